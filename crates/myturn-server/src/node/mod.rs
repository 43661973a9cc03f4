//! The node: what one server process holds around the [`Store`]: its
//! clock, its sockets (the fan-out), the token signer, the PBX link, the
//! metrics and the tunables, shared by handlers and background tasks as
//! [`AppState`]; the runtime tasks (sweeper, console history, the PBX watch); and the
//! lifecycle log of what use cases did.
//!
//! Everything here is per node; everything shared by nodes (users, pairs,
//! sessions, bans, rate limits) is behind the [`Store`]. Handlers run a
//! use case with [`AppState::run`]: one call, one atomic step.

pub mod fanout;
mod histogram;
pub(crate) mod history;
pub(crate) mod longpoll;
pub mod metrics;
pub(crate) mod pbx_watch;
pub mod refusals;
mod story;
pub(crate) mod sweeper;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{At, Clock};
use crate::config::Cidr;
use crate::core::cases::account::{Authenticate, Reauth, Session};
use crate::core::cases::lobby::{LobbySay, Speaker};
use crate::core::cases::streams::{Sweep, Swept};
use crate::core::cases::views::Counts;
use crate::core::tokens::AdminToken;
use crate::core::{Core, Jwt, Listed, UserId};
use crate::pbx::PbxSync;
use crate::store::{Store, StoreError};
use fanout::Fanout;
use metrics::{Gauges, Metrics};

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
    pub trusted_proxies: Vec<Cidr>,
    /// This node's name among the nodes sharing a store.
    pub node_id: String,
    /// The UDP ports the browser's data channels bind (`--webrtc-ports`);
    /// any free one when `None`.
    pub webrtc_ports: Option<std::ops::RangeInclusive<u16>>,
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
    /// Refused tokens, told once per client and window.
    pub refusals: refusals::Refusals,
    /// When the sweeper must run next (a waiting user's interest wait).
    pub alarm: sweeper::Alarm,
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
    /// A node around `inner.store`.
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    /// Now, from the node's clock.
    pub fn now(&self) -> At {
        self.clock.now()
    }

    /// Runs one use case now, as one atomic step of the store.
    pub async fn run<U: Listed>(&self, case: U) -> Result<U::Output, StoreError> {
        self.run_at(case, self.now()).await
    }

    /// Runs one use case at `now`.
    pub async fn run_at<U: Listed>(&self, case: U, now: At) -> Result<U::Output, StoreError> {
        Ok(self.run_reaching(case, now).await?.0)
    }

    /// Runs one use case at `now`; also answers how many of this node's
    /// sockets its deliveries reached.
    pub async fn run_reaching<U: Listed>(
        &self,
        case: U,
        now: At,
    ) -> Result<(U::Output, usize), StoreError> {
        let out = self.store.execute(case.into(), now).await?;
        if !out.pairings.is_empty() {
            self.metrics.pairings.record(&out.pairings);
        }
        if let Some(at) = out.wake_at {
            self.alarm.set(now.mono_of(at));
        }
        if !out.story.is_empty() {
            story::log(&out.story, || story::media_path(&self.pbx.media().mode));
        }
        let reply = U::output(out.reply)
            .ok_or_else(|| StoreError::Unavailable("the store answered another use case".into()))?;
        Ok((reply, out.reached))
    }

    /// The session behind an access token: its signature and expiry are
    /// checked here (no state, so no store step), the rest by the store.
    pub async fn authenticate(&self, token: &str) -> Result<Session, StoreError> {
        let now = self.now();
        let claims = self
            .jwt
            .verify(token, now.unix())
            .map_err(|e| StoreError::Refused(e.into()))?;
        self.run_at(Authenticate { claims }, now).await
    }

    /// A token presented on `uid`'s open stream to extend it; answers its
    /// expiry.
    pub async fn reauth(&self, uid: UserId, token: &str) -> Result<u64, StoreError> {
        let now = self.now();
        let claims = self
            .jwt
            .verify(token, now.unix())
            .map_err(|e| StoreError::Refused(e.into()))?;
        self.run_at(Reauth { uid, claims }, now).await
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

    /// The periodic sweep at `now` (see [`Sweep`]); counts expiries.
    pub async fn sweep(&self, now: At) -> Result<Swept, StoreError> {
        let swept = self.run_at(Sweep, now).await?;
        self.metrics
            .expiries
            .fetch_add(swept.expired.len() as u64, Relaxed);
        Ok(swept)
    }

    /// Says `text` in the lobby and counts it; answers how many sockets
    /// the line was queued on.
    pub async fn lobby_say(&self, speaker: Speaker, text: String) -> Result<usize, StoreError> {
        let ((), reached) = self
            .run_reaching(LobbySay { speaker, text }, self.now())
            .await?;
        self.metrics.lobby_messages.fetch_add(1, Relaxed);
        self.metrics
            .lobby_deliveries
            .fetch_add(reached as u64, Relaxed);
        Ok(reached)
    }

    /// Registry and socket gauges for `/metrics`.
    pub(crate) async fn gauges(&self) -> Gauges {
        let counts = self.run(Counts).await.unwrap_or_default();
        Gauges {
            by_status: counts.by_status,
            waiting: counts.waiting,
            pairings_total: counts.pairings_total,
            websockets: self.fanout.sockets_open() as u64,
        }
    }
}
