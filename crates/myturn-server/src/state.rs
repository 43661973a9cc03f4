//! The node: what one server process holds around the [`Store`]: its
//! clock, its sockets (the fan-out), the token signer, the PBX link, the
//! metrics and the tunables. Handlers and background tasks share it as
//! [`AppState`].
//!
//! Everything here is per node; everything shared by nodes (users, pairs,
//! sessions, bans, rate limits) is behind the [`Store`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{AdminToken, Jwt};
use crate::clock::{At, Clock};
use crate::core::{Core, CoreError, Swept};
use crate::events::fanout::Fanout;
use crate::metrics::Metrics;
use crate::pbx::PbxSync;
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
}
