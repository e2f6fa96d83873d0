//! Logging for the Lambda functions: Lambda's log level and format (as
//! `lambda_http::tracing::init_default_subscriber` reads them), except that the
//! runtime's raw event is never logged. `lambda_runtime` logs each incoming event at
//! TRACE, and an API Gateway event holds the caller's `Authorization` header, so that
//! one target is capped at DEBUG whatever level is configured.

use lambda_http::tracing::subscriber::filter::{Directive, EnvFilter, LevelFilter};
use lambda_http::tracing::subscriber::fmt::MakeWriter;

/// The `lambda_runtime` target that logs raw events at TRACE.
pub const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

/// Installs the function's subscriber, writing to stdout (CloudWatch Logs), at the
/// level and in the format the configuration read from Lambda's controls.
pub fn init_lambda(logging: &crate::config::Logging) {
    let builder = lambda_http::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter(&logging.level))
        .with_writer(std::io::stdout);
    let installed = if logging.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = installed {
        eprintln!("logging was already set up: {e}");
    }
}

/// The filter for `level`, with the raw-event target capped at DEBUG.
pub fn filter(level: &str) -> EnvFilter {
    let level: LevelFilter = level.parse().unwrap_or(LevelFilter::INFO);
    let cap: Directive = match format!("{RAW_EVENT_TARGET}=debug").parse() {
        Ok(cap) => cap,
        // The directive is a constant; if it ever failed to parse, log nothing at all
        // rather than risk logging credentials.
        Err(_) => LevelFilter::OFF.into(),
    };
    EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy("")
        .add_directive(cap)
}

/// A subscriber like [`init_lambda`]'s writing to `writer` (for tests).
pub fn subscriber_to<W>(level: &str, writer: W) -> impl lambda_http::tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    lambda_http::tracing::subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn at_trace_the_raw_event_is_still_not_logged() {
        let captured = Captured::default();
        let sink = captured.clone();
        let guard = tracing::subscriber::set_default(subscriber_to("TRACE", move || sink.clone()));
        // What lambda_runtime 1.x logs for every event, and an ordinary trace line.
        tracing::trace!(target: "lambda_runtime::layers::api_response", body = "Authorization: Bearer pisync_d.secret", "raw JSON event received from Lambda");
        tracing::trace!(target: "pisync", "an ordinary trace line");
        drop(guard);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("an ordinary trace line"), "{text}");
        assert!(!text.contains("pisync_d.secret"), "{text}");
    }
}
