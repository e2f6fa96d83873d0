//! Change feeds: deliver every stored event to the real detect-failures handler as
//! DynamoDB stream records, as the Lambda event source mapping does in AWS.
//!
//! - [`sqlite`]: the embedded store's own feed, read in commit order, its position
//!   checkpointed after each batch; after a restart or crash it resumes there.
//! - [`dynamodb_streams`]: the table's stream through the DynamoDB Streams API, each
//!   shard's checkpoint kept in the data directory, so a restart resumes there too.
//!
//! Either way a batch with a failed record is retried from that record after a pause,
//! and at most one batch is ever delivered twice — the redelivery detection is built
//! to recognise (docs/design.md).

pub mod dynamodb_streams;
pub mod sqlite;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use detect_failures::DetectFailures;
use std::time::Duration;
use tokio::sync::watch;

/// Most records in one batch, as the template's event source mapping.
const BATCH: usize = 100;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn backoff(current: Duration) -> Duration {
    (current * 2).clamp(Duration::from_millis(200), MAX_BACKOFF)
}

/// Runs the detector on `event`, counting what it did in the runner's metrics.
async fn detect(detector: &DetectFailures, event: Event) -> DynamoDbEventResponse {
    let detected = detect_failures::detect(detector, event).await;
    detected.figures.record();
    detected.response
}

async fn wait(stop: &mut watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stop.changed() => {}
    }
}
