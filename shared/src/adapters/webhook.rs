//! Webhook deliveries over HTTPS. The client trusts the public web's roots (Mozilla's,
//! compiled in — a receiver is any web server, not an AWS endpoint), gives up on a
//! connection after 5 s and on an answer after 10 s, and follows no redirect: a
//! redirect is a misconfigured URL, and following it could hand a signed notice to
//! another host.

use crate::domain::webhook::Answer;
use crate::ports::WebhookTransport;
use async_trait::async_trait;
use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct HttpsWebhook {
    client: reqwest::Client,
}

impl HttpsWebhook {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tls_built_in_native_certs(false)
            .tls_built_in_webpki_certs(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("PiSync-Webhook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }
}

#[async_trait]
impl WebhookTransport for HttpsWebhook {
    async fn post(&self, url: &str, body: &str, headers: &[(&str, String)]) -> Answer {
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => {
                let answer = Answer::of_status(response.status().as_u16());
                if answer != Answer::Delivered {
                    tracing::warn!(
                        status = response.status().as_u16(),
                        "webhook receiver refused the notice"
                    );
                }
                answer
            }
            Err(err) => {
                tracing::warn!(error = %err, timeout = err.is_timeout(), "webhook receiver unreachable");
                Answer::TryAgain
            }
        }
    }
}
