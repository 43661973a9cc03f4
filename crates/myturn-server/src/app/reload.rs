//! `--interest-blocklist`: read at start, and again on every SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::ReadError;
use crate::core::blocklist::Blocklist;

/// Reads `--interest-blocklist`.
pub(super) fn read_list(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError {
        path: path.to_owned(),
        source,
    })
}

/// Reads the blocklist again on every SIGHUP until `stop` flips; a file
/// that cannot be read keeps the terms in force, and says why.
pub(super) fn spawn_blocklist_reload(
    path: PathBuf,
    list: Arc<Blocklist>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(_) => return,
        };
        loop {
            #[cfg(unix)]
            let hangup = hup.recv();
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = hangup => match read_list(&path) {
                    Ok(text) => {
                        let n = list.replace(Blocklist::parse(&text));
                        tracing::info!(path = %path.display(), terms = n, "interest blocklist read again");
                    }
                    Err(error) => tracing::warn!(%error, "interest blocklist not read again; the old terms stay"),
                },
                _ = stop.wait_for(|&s| s) => return,
            }
        }
    })
}
