//! The periodic sweep's task: lease, grace, answer timeout, interest
//! fallbacks, rematch. It runs every quarter of the shortest timeout, and
//! at once when a use case set a deadline sooner ([`Alarm`]). Among nodes
//! sharing a state, the one holding the sweeper's lease runs it on the
//! clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::AppState;

/// The earliest moment the sweep has work, as use cases set it (an
/// interest wait that runs out).
#[derive(Debug, Default)]
pub struct Alarm {
    at: Mutex<Option<Instant>>,
    changed: Notify,
}

impl Alarm {
    /// Asks for a sweep at `at` (the earliest asked wins).
    pub fn set(&self, at: Instant) {
        let mut cur = self.at.lock().unwrap_or_else(|e| e.into_inner());
        if cur.is_none_or(|c| at < c) {
            *cur = Some(at);
            self.changed.notify_one();
        }
    }

    /// Sleeps until `periodic` or the alarm, whichever comes first; the
    /// alarm is spent when it rings. Answers whether it rang.
    async fn sleep(&self, periodic: Instant) -> bool {
        loop {
            let at = *self.at.lock().unwrap_or_else(|e| e.into_inner());
            let until = at.map_or(periodic, |a| a.min(periodic));
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {
                    let mut cur = self.at.lock().unwrap_or_else(|e| e.into_inner());
                    let rang = cur.is_some_and(|a| a <= Instant::now());
                    if rang {
                        *cur = None;
                    }
                    return rang;
                }
                _ = self.changed.notified() => {}
            }
        }
    }
}

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
            let rang = tokio::select! {
                rang = state.alarm.sleep(Instant::now() + every) => rang,
                _ = stop.wait_for(|&s| s) => return,
            };
            state.refusals.flush(Instant::now());
            // Nodes sharing a state take turns: one sweeps on the clock,
            // and a node whose own use case set a deadline sweeps then.
            if !rang && !state.store.leads_sweep() {
                continue;
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
