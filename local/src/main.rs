//! The `pisync-local` command: flags, logging, runtime; the work is in the library.

use pisync_local::{cli, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match cli::parse(&args, |k| std::env::var(k).ok()) {
        Ok(cli::Parsed::Run(o)) => o,
        Ok(cli::Parsed::Token(request, o)) => return token(&request, &o),
        Ok(cli::Parsed::Help) => {
            print!("{}", cli::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("pisync-local: {e}\n\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pisync-local: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(options)) {
        eprintln!("pisync-local: {e}");
        std::process::exit(1);
    }
}

/// `pisync-local token …`: prints the new token alone on stdout.
fn token(request: &cli::TokenRequest, options: &cli::Options) {
    let issued = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.into())
        .and_then(|rt| rt.block_on(pisync_local::auth::issue(request, options)));
    match issued {
        Ok(token) => println!("{token}"),
        Err(e) => {
            eprintln!("pisync-local: {e}");
            std::process::exit(1);
        }
    }
}
