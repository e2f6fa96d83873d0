#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    pisync_shared::lambda::serve_http::<list_device_notices::ListDeviceNotices>().await
}
