//! The console's hour of history: key figures sampled every
//! [`HISTORY_EVERY`](super::metrics::HISTORY_EVERY).

use tokio::sync::watch;

use super::metrics::HISTORY_EVERY;
use super::AppState;

impl AppState {
    /// Samples the key figures into the console's hour of history.
    pub async fn sample_history(&self) {
        let g = self.gauges().await;
        let pbx = self.pbx.summary();
        self.metrics.record(myturn_wire::MetricsSample {
            at: self.now().unix(),
            users: g.by_status.iter().map(|(_, n)| n).sum(),
            waiting: g.waiting,
            pairings_total: g.pairings_total,
            streams: g.websockets,
            relayed_calls: pbx.relayed_calls,
            relay_packets_total: pbx.relay_packets_total,
            sip_bindings: pbx.sip_bindings,
        });
    }
}

/// Samples the history until `stop` flips.
pub(crate) fn spawn(
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            state.sample_history().await;
            tokio::select! {
                _ = tokio::time::sleep(HISTORY_EVERY) => {}
                _ = stop.wait_for(|&s| s) => return,
            }
        }
    })
}
