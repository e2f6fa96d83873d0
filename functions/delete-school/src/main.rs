#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    pisync_shared::lambda::serve_http::<delete_school::DeleteSchool>().await
}
