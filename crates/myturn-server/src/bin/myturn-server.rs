//! `myturn-server`: parse flags, set up logging, run the library.

use std::io::IsTerminal as _;

use myturn_server::config::{LoadError, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = match myturn_server::Config::load() {
        Ok(cfg) => cfg,
        // clap's own exit: --help and --version on stdout, status 0;
        // usage errors on stderr, status 2.
        Err(LoadError::Args(e)) => e.exit(),
        Err(e @ LoadError::File(_)) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("MYTURN_LOG")
            .unwrap_or_else(|_| "info,tower_http=warn,myturn::request=off".into())
    };
    match cfg.log_format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_target(false)
            // Escape codes only for a person at a terminal (no-color.org).
            .with_ansi(
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init(),
    }
    myturn_server::run(cfg).await?;
    Ok(())
}
