#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    pisync_shared::lambda::serve_http::<assign_device_school::AssignDeviceSchool>().await
}
