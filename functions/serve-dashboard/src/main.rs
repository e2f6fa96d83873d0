use lambda_http::{run, service_fn, Error};
use pisync_shared::config::Config;
use serve_dashboard::{handle, ServeDashboard, SignIn};

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    pisync_shared::logging::init_lambda();
    let config = Config::from_env()?;
    let sign_in = match config.dashboard_sign_in() {
        Some((domain, client_id, redirect_uri)) => SignIn::Cognito {
            domain: domain.to_owned(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
        },
        None => SignIn::Token,
    };
    let deps = ServeDashboard { sign_in };
    run(service_fn(|req| async {
        Ok::<_, Error>(handle(&deps, req).await)
    }))
    .await
}
