//! Watches this node's PBX once a second for the admins: SIP bindings
//! made and gone (built-in PBX) become [`SipBinding`] use cases, and the
//! media figures, when one changed, a [`RelayChanged`] one. Both reach
//! every node's admin sockets as deliveries, like any other change.

use std::collections::HashMap;
use std::time::Duration;

use myturn_wire::RelayFigures;
use tokio::sync::watch;

use super::AppState;
use crate::core::cases::pbx::{RelayChanged, SipBinding};

/// How often the PBX is looked at.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What the watcher last told the store.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    /// The registrar's (registrations, unregistrations) counters when the
    /// bindings were last read: unchanged, nothing to read.
    counters: Option<(u64, u64)>,
    /// Name → contact, as last told.
    bindings: HashMap<String, String>,
    /// The figures last told.
    figures: RelayFigures,
}

impl AppState {
    /// The PBX's media figures now.
    fn relay_figures(&self) -> RelayFigures {
        let m = self.pbx.media();
        RelayFigures {
            calls: m.calls.len() as u64,
            packets: m.packets,
            bytes: m.bytes,
            dropped: m.dropped,
            ports_free: m.ports_free,
            ports_capacity: m.ports_capacity,
            sip_bindings: self.pbx.summary().sip_bindings,
        }
    }

    /// One look at the PBX: tells the store what changed since `w`.
    pub(crate) async fn watch_pbx(&self, w: &mut Watched) {
        if let Some(h) = self.pbx.sip_edge() {
            let st = h.stats();
            let counters = (st.registrations, st.unregistrations);
            if w.counters != Some(counters) {
                let now: HashMap<String, String> = h
                    .bindings()
                    .into_iter()
                    .map(|(name, contact, _)| (name, contact))
                    .collect();
                let mut ok = true;
                for (name, contact) in &now {
                    if w.bindings.get(name) != Some(contact) {
                        let case = SipBinding {
                            name: name.clone(),
                            contact: Some(contact.clone()),
                        };
                        ok &= self.run(case).await.is_ok();
                    }
                }
                for name in w.bindings.keys().filter(|n| !now.contains_key(*n)) {
                    let case = SipBinding {
                        name: name.clone(),
                        contact: None,
                    };
                    ok &= self.run(case).await.is_ok();
                }
                // A store that did not answer is asked again next time.
                if ok {
                    w.counters = Some(counters);
                    w.bindings = now;
                }
            }
        }
        let figures = self.relay_figures();
        if figures != w.figures {
            let case = RelayChanged {
                node: self.settings.node_id.clone(),
                figures,
            };
            if self.run(case).await.is_ok() {
                w.figures = figures;
            }
        }
    }
}

/// Watches the PBX until `stop` flips.
pub(crate) fn spawn(
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut w = Watched::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = stop.wait_for(|&s| s) => return,
            }
            state.watch_pbx(&mut w).await;
        }
    })
}
