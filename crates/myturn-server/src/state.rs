//! The node: what one server process holds around the [`Store`]: its
//! clock, its sockets (the fan-out), the token signer, the PBX link, the
//! metrics and the tunables. Handlers and background tasks share it as
//! [`AppState`].
//!
//! Everything here is per node; everything shared by nodes (users, pairs,
//! sessions, bans, rate limits) is behind the [`Store`].

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use myturn_wire::PeerResponse;

use crate::auth::{AdminToken, Jwt};
use crate::clock::{At, Clock};
use crate::core::{Core, CoreError, Swept};
use crate::events::fanout::Fanout;
use crate::metrics::{Gauges, Metrics, PbxFigures};
use crate::pbx::PbxSync;
use crate::registry::{RegistryError, UserId};
use crate::store::Store;

/// Tunables the handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Handed to clients in their SIP credentials.
    pub sip_domain: String,
    /// Silence after which a user is removed.
    pub lease: Duration,
    /// Longest long-poll.
    pub max_wait: Duration,
    /// Most WebSockets per user.
    pub max_sockets_per_user: usize,
    /// Most WebSockets in all.
    pub max_sockets: usize,
    /// Server → client WebSocket ping period.
    pub ping_every: Duration,
    /// How long a user whose event stream closed may take to reconnect
    /// before leaving the pool (or its pair).
    pub stream_grace: Duration,
    /// A pair whose call has not started by then is ended
    /// (`--answer-timeout`).
    pub answer_timeout: Duration,
    /// Whether this server terminates TLS itself.
    pub tls: bool,
    /// Shown in `/healthz` and logged at start: a setup to fix.
    pub warning: Option<String>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` are believed.
    pub trusted_proxies: Vec<crate::proxy::Cidr>,
}

/// Cheap to clone; shared by every handler and background task.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// See [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// Every use case (users, pairs, sessions, moderation).
    pub store: Arc<dyn Store>,
    /// This node's sockets and long-poll wake-ups.
    pub fanout: Arc<Fanout>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Access-token signer (the store's).
    pub jwt: Arc<Jwt>,
    /// Admin token, if configured.
    pub admin: Option<AdminToken>,
    /// PBX handle.
    pub pbx: Arc<PbxSync>,
    /// Counters.
    pub metrics: Metrics,
    /// Tunables.
    pub settings: Settings,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// A node over `store`, whose deliveries go to `fanout`.
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    /// Now, from the node's clock.
    pub fn now(&self) -> At {
        self.clock.now()
    }

    /// Tests only: runs `f` on the in-memory core (`None` with another
    /// store).
    #[doc(hidden)]
    pub fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> Option<R> {
        let mut f = Some(f);
        let mut out = None;
        self.store.inspect(&mut |core| {
            if let Some(f) = f.take() {
                out = Some(f(core));
            }
        });
        out
    }

    /// The periodic sweep (see [`Core::sweep`]) at `now`; counts expiries.
    pub async fn sweep(&self, now: At) -> Result<Swept, CoreError> {
        let swept = self.store.sweep(now).await?;
        self.metrics
            .expiries
            .fetch_add(swept.expired.len() as u64, Relaxed);
        Ok(swept)
    }

    /// Waits up to `wait` for `uid` to be paired. `Ok(None)`: still
    /// waiting.
    pub async fn wait_for_peer(
        &self,
        uid: UserId,
        wait: Duration,
    ) -> Result<Option<PeerResponse>, CoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before looking: a pairing in between still wakes us.
        let mut rx = self.fanout.subscribe(uid);
        let found = self.store.peer_of(uid).await?;
        if found.is_some() || wait.is_zero() {
            return Ok(found);
        }
        let Some(rx) = rx.as_mut() else {
            return Err(RegistryError::NoSuchUser.into());
        };
        self.store.watch(uid, true, self.now()).await?;
        // Closes the watch when this future ends, also when the client
        // hangs up mid-wait and the future is dropped.
        struct Unwatch(AppState, UserId);
        impl Drop for Unwatch {
            fn drop(&mut self) {
                let (state, uid) = (self.0.clone(), self.1);
                let now = state.now();
                let mut done = Box::pin(async move {
                    let _ = state.store.watch(uid, false, now).await;
                });
                // The in-memory store is done at the first poll; a
                // networked one finishes in a task of its own.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if done.as_mut().poll(&mut cx).is_pending() {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(done);
                    }
                }
            }
        }
        let _guard = Unwatch(self.clone(), uid);
        loop {
            let woke = tokio::time::timeout_at(deadline, rx.changed()).await;
            let found = self.store.peer_of(uid).await?;
            match woke {
                _ if found.is_some() => return Ok(found),
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(RegistryError::NoSuchUser.into()),
                Err(_) => return Ok(None),
            }
        }
    }

    /// Registry and socket gauges for `/metrics`.
    pub async fn gauges(&self) -> Gauges {
        let counts = self.store.counts().await.unwrap_or_default();
        Gauges {
            by_status: counts.by_status,
            waiting: counts.waiting,
            pairings_total: counts.pairings_total,
            websockets: self.fanout.sockets_open() as u64,
        }
    }

    /// Samples the key figures into the console's hour of history.
    pub async fn sample_history(&self) {
        let g = self.gauges().await;
        let pbx = self.pbx_figures();
        self.metrics.record(myturn_wire::MetricsSample {
            at: self.now().unix(),
            users: g.by_status.iter().map(|(_, n)| n).sum(),
            waiting: g.waiting,
            pairings_total: g.pairings_total,
            streams: g.websockets,
            relayed_calls: pbx.media.as_ref().map_or(0, |m| m.calls.len() as u64),
            relay_packets_total: pbx.media.as_ref().map_or(0, |m| m.totals.0),
            sip_bindings: pbx.sip.as_ref().map_or(0, |s| s.1 as u64),
        });
    }

    /// PBX figures for `/metrics`.
    pub fn pbx_figures(&self) -> PbxFigures {
        self.pbx.figures()
    }
}
