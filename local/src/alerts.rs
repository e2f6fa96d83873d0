//! The local notice channels: each notice is printed on stdout as one JSON line,
//! appended to `--alerts-file` when given, and queued for each webhook it goes to (the
//! fleet's `--webhook-url`, its school's `webhook_url`), delivered by their own worker:
//! [`crate::webhooks`].

use crate::webhooks::WebhookQueue;
use async_trait::async_trait;
use pisync_shared::domain::notice::Notice;
use pisync_shared::domain::webhook::WebhookTarget;
use pisync_shared::ports::alerts::{AlertPublisher, PublishError};
use pisync_shared::ports::ReadSchools;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub struct LocalAlerts {
    file: Option<Mutex<File>>,
    webhooks: Arc<WebhookQueue>,
    /// Whether the fleet has a webhook (`--webhook-url`).
    fleet_webhook: bool,
    schools: Arc<dyn ReadSchools>,
}

impl LocalAlerts {
    pub fn new(
        path: Option<&Path>,
        webhooks: Arc<WebhookQueue>,
        fleet_webhook: bool,
        schools: Arc<dyn ReadSchools>,
    ) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        Ok(Self {
            file,
            webhooks,
            fleet_webhook,
            schools,
        })
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
        for target in WebhookTarget::of(notice, self.fleet_webhook) {
            // A school without a webhook queues nothing (the worker reads the URL again
            // at each attempt, so one removed meanwhile drops the delivery).
            let has_url = match &target {
                WebhookTarget::Fleet => true,
                WebhookTarget::School(id) => self
                    .schools
                    .school(id)
                    .await
                    .map_err(|e| PublishError::with_source("school webhook", e))?
                    .is_some_and(|school| school.webhook_url.is_some()),
            };
            if has_url {
                self.webhooks.enqueue(notice, &target)?;
            }
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(line.as_bytes()).and_then(|()| stdout.flush());
        Ok(())
    }
}
