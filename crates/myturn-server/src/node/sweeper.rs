//! The periodic sweep's task: lease, grace, answer timeout, rematch.

use std::time::Duration;

use tokio::sync::watch;

use super::AppState;

/// Runs the sweep until `stop` flips, often enough that a closed stream
/// is acted on soon after its grace, and an expired lease soon after the
/// lease.
pub(crate) fn spawn(
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let s = &state.settings;
    let every = (s.lease / 4)
        .min(s.stream_grace / 4)
        .min(s.answer_timeout / 4)
        .max(Duration::from_millis(250));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|&s| s) => return,
            }
            let swept = match state.sweep(state.now()).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, "sweep failed; retrying");
                    continue;
                }
            };
            for name in swept.ghosts {
                tracing::info!(%name, "event stream closed past the grace: out of the pool");
            }
            for name in swept.expired {
                tracing::info!(%name, "lease expired: user logged out");
            }
            for name in swept.unanswered {
                tracing::info!(%name, "call not set up within the answer timeout: pair ended, out of the pool");
            }
        }
    })
}
