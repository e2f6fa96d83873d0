#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    pisync_shared::lambda::serve_http::<school_analytics::SchoolAnalytics>().await
}
