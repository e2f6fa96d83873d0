//! Webhook deliveries over HTTPS. The client trusts the public web's roots (Mozilla's,
//! compiled in — a receiver is any web server, not an AWS endpoint) and any extra roots
//! the configuration names (`WEBHOOK_EXTRA_ROOTS`: a district's own CA), gives up on a
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

/// Why the webhook client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WebhookClientError {
    #[error("WEBHOOK_EXTRA_ROOTS must hold PEM certificates")]
    ExtraRoots(#[source] reqwest::Error),
    #[error("WEBHOOK_EXTRA_ROOTS holds no certificate")]
    NoExtraRoots,
    #[error("building the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

impl HttpsWebhook {
    /// A client trusting the public web's roots only.
    pub fn new() -> Result<Self, WebhookClientError> {
        Self::trusting(None)
    }

    /// A client trusting the public web's roots and the PEM certificates in `extra_roots`.
    pub fn trusting(extra_roots: Option<&str>) -> Result<Self, WebhookClientError> {
        let mut builder = reqwest::Client::builder()
            .tls_built_in_native_certs(false)
            .tls_built_in_webpki_certs(true);
        if let Some(pem) = extra_roots {
            let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(WebhookClientError::ExtraRoots)?;
            if roots.is_empty() {
                return Err(WebhookClientError::NoExtraRoots);
            }
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        let client = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("PiSync-Webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(WebhookClientError::Client)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate (public; its key was thrown away).
    const ROOT: &str = "-----BEGIN CERTIFICATE-----\nMIIBjTCCATOgAwIBAgIUGlM5XhtKICGUTQIa9PoY9fWOSy0wCgYIKoZIzj0EAwIw\nGzEZMBcGA1UEAwwQUGlTeW5jIHRlc3Qgcm9vdDAgFw0yNjEyMDMwNjA5NTZaGA8y\nMTI2MTEwOTA2MDk1NlowGzEZMBcGA1UEAwwQUGlTeW5jIHRlc3Qgcm9vdDBZMBMG\nByqGSM49AgEGCCqGSM49AwEHA0IABKSE82e8pIX2VxaqBilJn/QkscxFVia56tnW\nqqzGKS5fpV/7rQp1bfk7K+95WKj8t33msivjNjcNHnOjD4uH9WCjUzBRMB0GA1Ud\nDgQWBBT46U9eCkN+RGLomgCa+p2NqfzCtTAfBgNVHSMEGDAWgBT46U9eCkN+RGLo\nmgCa+p2NqfzCtTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQCv\nKZXUpq8E5fNYBo+vkA/3uaPM/xrTU14NIXERGGBKewIgGU4Sqsa05o9QmshN8MDm\nCzmdxQ+6aFZ90Sk1dbg+da0=\n-----END CERTIFICATE-----";

    #[test]
    fn extra_roots_in_pem_are_trusted() {
        assert!(HttpsWebhook::trusting(Some(ROOT)).is_ok());
        assert!(HttpsWebhook::trusting(Some(&format!("{ROOT}\n{ROOT}"))).is_ok());
    }

    #[test]
    fn extra_roots_without_a_certificate_stop_the_client() {
        assert!(matches!(
            HttpsWebhook::trusting(Some("not a certificate")),
            Err(WebhookClientError::NoExtraRoots)
        ));
        let torn = ROOT.replace("MII", "!!!");
        assert!(HttpsWebhook::trusting(Some(&torn)).is_err());
    }
}
