//! The local notice channels: each notice is printed on stdout as one JSON line,
//! appended to `--alerts-file` when given, and queued for the webhook when
//! `--webhook-url` is set (delivered by its own worker: [`crate::webhooks`]).

use crate::webhooks::WebhookQueue;
use async_trait::async_trait;
use pisync_shared::domain::notice::Notice;
use pisync_shared::ports::alerts::{AlertPublisher, PublishError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub struct LocalAlerts {
    file: Option<Mutex<File>>,
    webhook: Option<Arc<WebhookQueue>>,
}

impl LocalAlerts {
    pub fn new(path: Option<&Path>, webhook: Option<Arc<WebhookQueue>>) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        Ok(Self { file, webhook })
    }
}

#[async_trait]
impl AlertPublisher for LocalAlerts {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError> {
        let line = format!("{}\n", notice.to_json());
        if let Some(file) = &self.file {
            let mut file = file
                .lock()
                .map_err(|_| PublishError::new("alerts file lock poisoned"))?;
            // One write per line, then to disk: a crash never leaves half a line.
            file.write_all(line.as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(|e| PublishError::with_source("alerts file", e))?;
        }
        if let Some(webhook) = &self.webhook {
            webhook.enqueue(notice)?;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(line.as_bytes()).and_then(|()| stdout.flush());
        Ok(())
    }
}
