#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    pisync_shared::lambda::serve_events::<detect_failures::DetectFailures>().await
}
