//! `myturn-server`: parse flags, set up logging, run the library.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = myturn_server::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MYTURN_LOG")
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    myturn_server::run(cfg).await?;
    Ok(())
}
