//! The `pisync-local` command: flags, logging, runtime; the work is in the library.

use clap::Parser;
use pisync_local::cli::{Cli, Command};

/// The runner's allocator: requests allocate freely on several threads, and glibc's
/// malloc and free took about 9 % of a loaded runner's CPU (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Token { kind }) => token(&kind),
        Some(Command::SignIn { url, store }) => sign_in(&url, &store.data_dir),
        Some(Command::Export { out, from, to, store }) => export(&out, from, to, &store),
        None => serve(cli.run),
    };
    if let Err(e) = result {
        eprintln!("pisync-local: {e}");
        std::process::exit(1);
    }
}

fn serve(args: pisync_local::cli::RunArgs) -> Result<(), pisync_local::Failure> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| "info".into()))
        .init();
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(pisync_local::run(args))
}

/// `pisync-local sign-in`: prints a new one-time dashboard link.
fn sign_in(url: &str, data_dir: &std::path::Path) -> Result<(), pisync_local::Failure> {
    pisync_shared::adapters::secret_file::owner_only_dir(data_dir)?;
    let code = pisync_local::sign_in::new_code(data_dir, chrono::Utc::now().timestamp())?;
    pisync_local::sign_in::print_link(url.trim_end_matches('/'), &code)?;
    Ok(())
}

/// `pisync-local token …`: prints the new token alone on stdout (a revocation prints
/// nothing there).
fn token(request: &pisync_local::cli::TokenRequest) -> Result<(), pisync_local::Failure> {
    let config = pisync_shared::config::Config::from_env()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some(token) = runtime.block_on(pisync_local::auth::issue(request, &config))? {
        println!("{token}");
    }
    Ok(())
}

/// `pisync-local export`: writes the Parquet files, then prints each one's path.
fn export(
    out: &std::path::Path,
    from: Option<pisync_shared::domain::fleet::Day>,
    to: Option<pisync_shared::domain::fleet::Day>,
    store: &pisync_local::cli::StoreArgs,
) -> Result<(), pisync_local::Failure> {
    let config = pisync_shared::config::Config::from_env()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exported = runtime.block_on(async {
        let store = pisync_local::stores::Stores::for_export(store, &config).await?;
        pisync_local::export::export(store.as_ref(), out, from, to)
            .await
            .map_err(pisync_local::Failure::from)
    })?;
    for file in &exported.files {
        println!("{}", file.display());
    }
    eprintln!(
        "pisync-local: exported {} events in {} files",
        exported.events,
        exported.files.len()
    );
    Ok(())
}
