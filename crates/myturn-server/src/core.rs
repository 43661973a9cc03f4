//! The server's core: every use case of the pairing service, sans-IO.
//!
//! [`Core`] owns the state (the pairing [`Registry`], session families,
//! bans, reports, rate limits, the token signer) behind private fields. It
//! reads no clock, opens no socket and spawns nothing: each use case is one
//! method that takes the moment it happens ([`At`], read once by the caller
//! from a [`Clock`](crate::clock::Clock)), changes the state atomically, and
//! returns its reply. What the world must learn from it (events to push,
//! streams to close, the PBX to update) is written into an [`Effects`],
//! which the caller carries out: [`MemoryStore`](crate::store::MemoryStore)
//! under the same lock, so every user hears about changes in the order they
//! happened.
//!
//! The HTTP handlers parse a request, make one call here (through the
//! [`Store`](crate::store::Store) interface) and map the result to HTTP;
//! the WebSocket tasks do the same for client events.
//!
//! ```
//! use myturn_server::clock::{Clock, SystemClock};
//! use myturn_server::core::{Core, CoreConfig, Effects};
//! use myturn_wire::RequestedStatus;
//!
//! let mut core = Core::new(CoreConfig::default(), Some(7));
//! let now = SystemClock.now();
//! let mut fx = Effects::default();
//! let ip = std::net::Ipv4Addr::LOCALHOST.into();
//! let alice = core.register("alice", ip, now, &mut fx).unwrap();
//! let bob = core.register("bob", ip, now, &mut fx).unwrap();
//! let a = core.authenticate(&alice.token, now).unwrap();
//! let b = core.authenticate(&bob.token, now).unwrap();
//! core.set_status(a.uid, RequestedStatus::Ready, None, now, &mut fx).unwrap();
//! core.set_status(b.uid, RequestedStatus::Ready, None, now, &mut fx).unwrap();
//! assert!(core.peer_of(a.uid).unwrap().is_some()); // paired
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use myturn_wire::{
    validate_media_key, validate_name, validate_text, AdminPair, AdminPairs, AdminUser, AdminUsers,
    Ban, Bans as BanList, CreateUserResponse, LeaveReason, MeResponse, NameError, PeerResponse,
    Report, Reports as ReportList, RequestedStatus, ServerEvent, SipCredentials, Status, TokenPair,
    LOBBY_MAX_LEN, REPORT_MAX_LEN,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::auth::{Claims, Jwt, Sessions, TokenError};
use crate::clock::At;
use crate::moderation::{Bans, LimitKey, RateLimiter, Reports, MAX_BAN_SECS};
use crate::registry::{Notice, PbxUser, Registry, RegistryConfig, RegistryError, UserId};

/// How admins sign lobby lines.
pub const MODERATOR: &str = "moderator";

/// What the core is told at start.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The pairing registry's tunables.
    pub registry: RegistryConfig,
    /// Handed to clients with their SIP credentials.
    pub sip_domain: String,
    /// Access-token lifetime, seconds.
    pub token_ttl: u64,
    /// Silence after which a user is removed.
    pub lease: Duration,
    /// How long a closed event stream may take to come back.
    pub stream_grace: Duration,
    /// A pair whose call has not started by then is ended.
    pub answer_timeout: Duration,
    /// Whether rate limits apply.
    pub rate_limits: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            registry: RegistryConfig::default(),
            sip_domain: "127.0.0.1:5060".into(),
            token_ttl: 900,
            lease: Duration::from_secs(300),
            stream_grace: Duration::from_secs(3),
            answer_timeout: Duration::from_secs(45),
            rate_limits: true,
        }
    }
}

/// Something the world must learn from a use case, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A user registered: open their wake-ups.
    Joined(UserId),
    /// One event for one user (wakes their long-polls too).
    Event(UserId, ServerEvent),
    /// A lobby line or typing indicator: to these members and the admins.
    Lobby {
        /// Who in the lobby hears it.
        members: Vec<UserId>,
        /// What.
        event: ServerEvent,
    },
    /// A session family was revoked: its streams hear `session_expired`
    /// and close.
    FamilyRevoked(u64),
    /// A user left for `reason`: their streams hear `farewell` (if any)
    /// and close; their long-polls wake up and find them gone.
    Left {
        /// Who.
        user: UserId,
        /// Why.
        reason: LeaveReason,
        /// Said before the close (kicked, banned).
        farewell: Option<ServerEvent>,
    },
}

/// What a use case asks of the world besides its reply.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    /// To deliver, in this order.
    pub deliveries: Vec<Delivery>,
    /// The PBX's account directory changed.
    pub pbx_changed: bool,
}

impl Effects {
    fn notices(&mut self, notices: Vec<Notice>) {
        self.deliveries.extend(
            notices
                .into_iter()
                .map(|n| Delivery::Event(n.user, n.event)),
        );
    }
}

/// Why a use case was refused. Each maps to one HTTP status (and, on a
/// WebSocket, to an `error` event with the same code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The registry refused (name taken, full, not ready...). A user
    /// who is gone is [`CoreError::Unauthorized`] instead.
    #[error(transparent)]
    Registry(RegistryError),
    /// The nickname breaks the rule.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A field's value is not acceptable.
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// No valid session behind the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// An access or refresh token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Over a rate limit.
    #[error("too many requests; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// When a retry can succeed.
        retry_after: Duration,
    },
    /// The name is banned.
    #[error("this name is banned for another {remaining_secs} s")]
    Banned {
        /// Seconds until the ban ends.
        remaining_secs: u64,
    },
    /// No such user or ban.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed in the current state.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
}

impl From<RegistryError> for CoreError {
    fn from(e: RegistryError) -> Self {
        match e {
            // The token was good, but its user has left meanwhile.
            RegistryError::NoSuchUser => CoreError::Unauthorized(
                "your session has ended (logged out, kicked or expired); register again".into(),
            ),
            e => CoreError::Registry(e),
        }
    }
}

impl CoreError {
    /// The stable code, as an `error` event on a WebSocket carries it.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Registry(RegistryError::NameTaken(_)) => "name_taken",
            CoreError::Registry(RegistryError::NotReady) => "not_ready",
            CoreError::Registry(RegistryError::NotPaired) => "not_paired",
            CoreError::Registry(RegistryError::NoSuchUser)
            | CoreError::Unauthorized(_)
            | CoreError::Token(_) => "unauthorized",
            CoreError::Registry(_) => "unavailable",
            CoreError::InvalidName(_) => "invalid_name",
            CoreError::Invalid { code, .. } | CoreError::Conflict { code, .. } => code,
            CoreError::RateLimited { .. } => "rate_limited",
            CoreError::Banned { .. } => "banned",
            CoreError::NotFound(_) => "not_found",
        }
    }

    /// As an `error` event for a WebSocket.
    pub fn to_event(&self) -> ServerEvent {
        ServerEvent::Error {
            code: self.code().into(),
            message: self.to_string(),
        }
    }

    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// Said when the session behind a valid token has ended.
const SESSION_ENDED: &str =
    "this session has ended (logged out, kicked, expired or revoked); register again";

/// An authenticated session: who holds a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The registration.
    pub uid: UserId,
    /// The nickname.
    pub name: String,
    /// The session family.
    pub family: u64,
    /// When the token expires, Unix seconds.
    pub exp: u64,
    /// The user's status now.
    pub status: Status,
}

/// Who says a lobby line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// A user in the lobby.
    User(UserId),
    /// An admin, signed [`MODERATOR`].
    Moderator,
}

/// Whom an admin lets out of the waiting room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// One user, by name.
    One(String),
    /// Everyone waiting.
    All,
}

/// What a periodic sweep did (names, for the log).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Out of the pool: their event stream stayed closed past the grace.
    pub ghosts: Vec<String>,
    /// Logged out: silent past the lease.
    pub expired: Vec<String>,
    /// Held up a call past the answer timeout.
    pub unanswered: Vec<String>,
}

/// Registry figures for `/metrics` and the console.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Users per status, in [`Status::ALL`] order.
    pub by_status: Vec<(Status, u64)>,
    /// Users waiting in the pool.
    pub waiting: u64,
    /// Pairs made since start.
    pub pairings_total: u64,
}

/// The pairing service's state and use cases. See the module docs.
#[derive(Debug)]
pub struct Core {
    reg: Registry,
    sessions: Sessions,
    bans: Bans,
    reports: Reports,
    limits: RateLimiter,
    rng: StdRng,
    jwt: Arc<Jwt>,
    cfg: CoreConfig,
}

impl Core {
    /// A core whose every random choice (SIP secrets, pair picks, roles,
    /// token keys) follows from `seed` (tests); `None` draws them from the
    /// operating system.
    pub fn new(cfg: CoreConfig, seed: Option<u64>) -> Self {
        let seeded = |salt: u64| match seed {
            Some(s) => StdRng::seed_from_u64(s ^ salt),
            None => StdRng::from_entropy(),
        };
        let mut rng = seeded(0);
        let jwt = Arc::new(Jwt::new(&mut rng, cfg.token_ttl));
        Core {
            reg: Registry::new(cfg.registry.clone(), Box::new(rng)),
            sessions: Sessions::default(),
            bans: Bans::default(),
            reports: Reports::default(),
            limits: RateLimiter::new(cfg.rate_limits),
            rng: seeded(0x5eed_0f70_6be5),
            jwt,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// The access-token signer (shared with the node, which checks tokens
    /// of streams it holds).
    pub fn signer(&self) -> Arc<Jwt> {
        self.jwt.clone()
    }

    /// Tests only: the pairing registry.
    #[doc(hidden)]
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.reg
    }

    /// Tests only: the session families.
    #[doc(hidden)]
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    fn limit(&mut self, key: LimitKey, now: At) -> Result<(), CoreError> {
        self.limits
            .check(key, key.budget(), now.mono)
            .map_err(|retry_after| CoreError::RateLimited { retry_after })
    }

    fn issue(&self, name: &str, uid: UserId, family: u64, now: At) -> String {
        self.jwt.issue(name, uid, family, now.unix())
    }

    // ---- users and sessions ---------------------------------------------

    /// `POST /v1/users`: a new user with their own SIP account and a
    /// session. Refused while the name is taken or banned, the server is
    /// full, or `ip` registers too often.
    pub fn register(
        &mut self,
        name: &str,
        ip: IpAddr,
        now: At,
        fx: &mut Effects,
    ) -> Result<CreateUserResponse, CoreError> {
        validate_name(name)?;
        self.limit(LimitKey::Register(ip), now)?;
        if let Some(until) = self.bans.banned_until(name, now.unix()) {
            return Err(CoreError::Banned {
                remaining_secs: until - now.unix(),
            });
        }
        let user = self.reg.register(name, now)?;
        let (id, name, extension, password) = (
            user.id,
            user.name.clone(),
            user.extension,
            user.sip_password.clone(),
        );
        let (family, refresh_token) = self.sessions.open(id, &mut self.rng);
        fx.deliveries.push(Delivery::Joined(id));
        fx.pbx_changed = true;
        Ok(CreateUserResponse {
            token: self.issue(&name, id, family, now),
            refresh_token,
            expires_in: self.cfg.token_ttl,
            sip: SipCredentials {
                username: name.clone(),
                password,
                extension: extension.to_string(),
                domain: self.cfg.sip_domain.clone(),
            },
            name,
        })
    }

    /// Checks an access token: signature, audience, expiry at `now`, and a
    /// live session family. Counts as activity for the lease.
    pub fn authenticate(&mut self, token: &str, now: At) -> Result<Session, CoreError> {
        let claims = self.jwt.verify(token, now.unix())?;
        self.session(claims, now)
    }

    /// [`Core::authenticate`] for claims whose signature and expiry the
    /// caller already checked with [`Core::signer`] (a store does that
    /// outside its lock: it needs no state).
    pub fn session(&mut self, claims: Claims, now: At) -> Result<Session, CoreError> {
        if !self.sessions.is_live(claims.sid, claims.uid) {
            return Err(CoreError::Unauthorized(SESSION_ENDED.into()));
        }
        self.reg.touch(claims.uid, now.mono)?;
        let status = self
            .reg
            .get(claims.uid)
            .map(|u| u.status)
            .ok_or(RegistryError::NoSuchUser)?;
        Ok(Session {
            uid: claims.uid,
            name: claims.sub,
            family: claims.sid,
            exp: claims.exp,
            status,
        })
    }

    /// A token presented on `uid`'s open stream to extend it: valid, and
    /// of the same user. Returns its expiry.
    pub fn reauth(&mut self, uid: UserId, token: &str, now: At) -> Result<u64, CoreError> {
        let claims = self.jwt.verify(token, now.unix())?;
        self.renew(uid, claims, now)
    }

    /// [`Core::reauth`] for claims the caller already verified.
    pub fn renew(&mut self, uid: UserId, claims: Claims, now: At) -> Result<u64, CoreError> {
        let session = self.session(claims, now)?;
        if session.uid != uid {
            return Err(CoreError::Unauthorized(
                "that token belongs to another session".into(),
            ));
        }
        Ok(session.exp)
    }

    /// `POST /v1/session/refresh`: spends a refresh token for a new pair.
    /// A spent token presented again revokes its whole family (its open
    /// streams close) and fails with [`TokenError::RefreshReused`].
    pub fn refresh(
        &mut self,
        token: &str,
        ip: IpAddr,
        now: At,
        fx: &mut Effects,
    ) -> Result<TokenPair, CoreError> {
        self.limit(LimitKey::Refresh(ip), now)?;
        let family = self.sessions.family_of(token);
        let (uid, family, refresh_token) = match self.sessions.rotate(token, &mut self.rng) {
            Ok(r) => r,
            Err(e) => {
                if let (TokenError::RefreshReused, Some(f)) = (&e, family) {
                    fx.deliveries.push(Delivery::FamilyRevoked(f));
                }
                return Err(e.into());
            }
        };
        let name = self
            .reg
            .get(uid)
            .map(|u| u.name.clone())
            .ok_or(RegistryError::NoSuchUser)?;
        self.reg.touch(uid, now.mono)?;
        Ok(TokenPair {
            token: self.issue(&name, uid, family, now),
            refresh_token,
            expires_in: self.cfg.token_ttl,
        })
    }

    /// `GET /v1/me`.
    pub fn me(&self, uid: UserId) -> Result<MeResponse, CoreError> {
        let u = self.reg.get(uid).ok_or(RegistryError::NoSuchUser)?;
        Ok(MeResponse {
            name: u.name.clone(),
            status: u.status,
            extension: u.extension.to_string(),
        })
    }

    /// `DELETE /v1/me`: the user leaves everywhere.
    pub fn logout(&mut self, uid: UserId, fx: &mut Effects) -> Result<String, CoreError> {
        self.remove(uid, LeaveReason::LoggedOut, None, fx)
    }

    /// Removes a user everywhere: registry, sessions, streams, PBX. Every
    /// way out (logout, kick, ban, lease) goes through here.
    fn remove(
        &mut self,
        uid: UserId,
        reason: LeaveReason,
        farewell: Option<ServerEvent>,
        fx: &mut Effects,
    ) -> Result<String, CoreError> {
        let (user, notices) = self.reg.remove(uid, reason)?;
        self.sessions.revoke_user(uid);
        fx.deliveries.push(Delivery::Left {
            user: uid,
            reason,
            farewell,
        });
        fx.notices(notices);
        fx.pbx_changed = true;
        Ok(user.name)
    }

    // ---- pairing --------------------------------------------------------

    /// `PUT /v1/me/status`: `ready` (with the next call's media key),
    /// `ready_to_talk` or `busy`. See `docs/api.md` for the flow.
    pub fn set_status(
        &mut self,
        uid: UserId,
        status: RequestedStatus,
        media_key: Option<String>,
        now: At,
        fx: &mut Effects,
    ) -> Result<MeResponse, CoreError> {
        if let Some(key) = &media_key {
            if status != RequestedStatus::Ready {
                return Err(CoreError::invalid(
                    "invalid_body",
                    "media_key goes with \"ready\" only",
                ));
            }
            validate_media_key(key).map_err(|m| CoreError::invalid("invalid_media_key", m))?;
        }
        if status == RequestedStatus::Ready {
            // A new draw: the last call's key never carries over.
            self.reg.set_media_key(uid, media_key)?;
        }
        let notices = self.reg.set_status(uid, status.into(), now)?;
        fx.notices(notices);
        self.me(uid)
    }

    /// `GET /v1/me/peer`: the partner once paired, `None` while waiting.
    pub fn peer_of(&self, uid: UserId) -> Result<Option<PeerResponse>, CoreError> {
        Ok(self.reg.peer_of(uid)?)
    }

    // ---- liveness -------------------------------------------------------

    /// Activity from `uid` (a message or pong on its stream).
    pub fn heard(&mut self, uid: UserId, now: At) -> Result<(), CoreError> {
        Ok(self.reg.touch(uid, now.mono)?)
    }

    /// A long-poll or event stream of `uid` opened (`open`) or closed.
    pub fn watch(&mut self, uid: UserId, open: bool, now: At) {
        self.reg.watch(uid, open, now.mono);
    }

    /// An event stream of `uid` opened: it is watched, and a reconnect
    /// ends the grace.
    pub fn stream_opened(&mut self, uid: UserId, now: At) {
        self.reg.watch(uid, true, now.mono);
        self.reg.stream_opened(uid);
    }

    /// An event stream of `uid` closed at `now`; it was last heard at
    /// `last_heard` (a stream that died silently was lost then: the grace
    /// counts from it).
    pub fn stream_closed(&mut self, uid: UserId, now: At, last_heard: std::time::Instant) {
        self.reg.watch(uid, false, now.mono);
        self.reg.stream_closed(uid, last_heard);
    }

    /// The periodic sweep: users whose stream stayed closed past the grace
    /// leave the pool or their pair; users silent past the lease are
    /// logged out; pairs whose call did not start in time end; users
    /// passed over while a candidate's liveness was in doubt are paired.
    pub fn sweep(&mut self, now: At, fx: &mut Effects) -> Swept {
        let mut swept = Swept::default();
        for id in self.reg.ghosts(now.mono, self.cfg.stream_grace) {
            fx.notices(self.reg.drop_ghost(id));
            swept
                .ghosts
                .extend(self.reg.get(id).map(|u| u.name.clone()));
        }
        self.limits.prune(now.mono, |k| k.budget());
        for id in self.reg.silent_since(now.mono, self.cfg.lease) {
            if let Ok(name) = self.remove(id, LeaveReason::Expired, None, fx) {
                swept.expired.push(name);
            }
        }
        for id in self.reg.unanswered(now.mono, self.cfg.answer_timeout) {
            fx.notices(self.reg.drop_unanswered(id));
            swept
                .unanswered
                .extend(self.reg.get(id).map(|u| u.name.clone()));
        }
        fx.notices(self.reg.rematch(now));
        swept
    }

    // ---- the lobby and moderation -----------------------------------------

    /// A lobby line, to everyone waiting and to the admins. A user must be
    /// in the lobby (status `ready`) and within the chat rate limit.
    pub fn lobby_say(
        &mut self,
        speaker: Speaker,
        text: String,
        now: At,
        fx: &mut Effects,
    ) -> Result<(), CoreError> {
        validate_text(&text, LOBBY_MAX_LEN)
            .map_err(|e| CoreError::invalid("invalid_text", e.to_string()))?;
        let (from, admin) = match speaker {
            Speaker::Moderator => (MODERATOR.to_owned(), true),
            Speaker::User(uid) => {
                if !self.reg.in_lobby(uid) {
                    return Err(CoreError::Conflict {
                        code: "not_in_lobby",
                        message:
                            "the lobby chat is for users waiting for a partner (status \"ready\")"
                                .into(),
                    });
                }
                let key = LimitKey::Lobby(uid);
                if let Err(wait) = self.limits.check(key, key.budget(), now.mono) {
                    return Err(CoreError::Conflict {
                        code: "rate_limited",
                        message: format!("too many messages; wait {:.1} s", wait.as_secs_f64()),
                    });
                }
                let name = self.reg.get(uid).ok_or(RegistryError::NoSuchUser)?;
                (name.name.clone(), false)
            }
        };
        fx.deliveries.push(Delivery::Lobby {
            members: self.reg.lobby().collect(),
            event: ServerEvent::LobbyMessage {
                from,
                admin,
                text,
                at: now.unix_ms,
            },
        });
        Ok(())
    }

    /// A typing indicator from `uid`, to the rest of the lobby (dropped
    /// outside it or above one a second).
    pub fn typing(&mut self, uid: UserId, now: At, fx: &mut Effects) {
        let key = LimitKey::Typing(uid);
        if !self.reg.in_lobby(uid) || self.limits.check(key, key.budget(), now.mono).is_err() {
            return;
        }
        let Some(from) = self.reg.get(uid).map(|u| u.name.clone()) else {
            return;
        };
        fx.deliveries.push(Delivery::Lobby {
            members: self.reg.lobby().filter(|&u| u != uid).collect(),
            event: ServerEvent::LobbyTyping { from },
        });
    }

    /// `POST /v1/me/report`: about the current partner, else the last one.
    /// Returns the reported name.
    pub fn report(&mut self, uid: UserId, reason: String, now: At) -> Result<String, CoreError> {
        validate_text(&reason, REPORT_MAX_LEN)
            .map_err(|e| CoreError::invalid("invalid_text", e.to_string()))?;
        self.limit(LimitKey::Report(uid), now)?;
        let reported = self
            .reg
            .report_target(uid)
            .ok_or_else(|| CoreError::Conflict {
                code: "no_partner",
                message: "you have had no partner to report yet".into(),
            })?;
        let reporter = self.me(uid)?.name;
        self.reports.add(Report {
            reporter,
            reported: reported.clone(),
            reason,
            at: now.unix(),
        });
        Ok(reported)
    }

    /// `POST /v1/admin/admit`: lets users out of the waiting room (with
    /// `--admission moderated`). Returns who was admitted.
    pub fn admit(
        &mut self,
        who: Admit,
        now: At,
        fx: &mut Effects,
    ) -> Result<Vec<String>, CoreError> {
        if !self.reg.moderated() {
            return Err(CoreError::Conflict {
                code: "not_moderated",
                message:
                    "admission is open (start with --admission moderated to use the waiting room)"
                        .into(),
            });
        }
        let (ids, notices) = match who {
            Admit::One(name) => {
                let id = self
                    .reg
                    .find(&name)
                    .map(|u| u.id)
                    .ok_or_else(|| CoreError::NotFound(format!("no user named {name:?}")))?;
                (vec![id], self.reg.admit(id, now)?)
            }
            Admit::All => self.reg.admit_all(now),
        };
        fx.notices(notices);
        Ok(ids
            .iter()
            .filter_map(|id| self.reg.get(*id).map(|u| u.name.clone()))
            .collect())
    }

    /// `DELETE /v1/admin/users/{name}`: removes a user, who hears
    /// `kicked`. Returns the name as registered.
    pub fn kick(&mut self, name: &str, fx: &mut Effects) -> Result<String, CoreError> {
        let id = self
            .reg
            .find(name)
            .map(|u| u.id)
            .ok_or_else(|| CoreError::NotFound(format!("no user named {name:?}")))?;
        self.remove(id, LeaveReason::Kicked, Some(ServerEvent::Kicked), fx)
    }

    /// `POST /v1/admin/bans`: bans a name for `seconds` and removes its
    /// user, if online. Returns the ban and whether someone was removed.
    pub fn ban(
        &mut self,
        name: &str,
        seconds: u64,
        now: At,
        fx: &mut Effects,
    ) -> Result<(Ban, bool), CoreError> {
        validate_name(name)?;
        if seconds == 0 || seconds > MAX_BAN_SECS {
            return Err(CoreError::invalid(
                "invalid_body",
                format!("seconds must be 1 to {MAX_BAN_SECS}"),
            ));
        }
        let until = now.unix() + seconds;
        // Ban first: from here on the name cannot register again.
        self.bans.ban(name, until);
        let online = match self.reg.find(name).map(|u| u.id) {
            Some(id) => self
                .remove(
                    id,
                    LeaveReason::Banned,
                    Some(ServerEvent::Banned { until }),
                    fx,
                )
                .is_ok(),
            None => false,
        };
        let ban = Ban {
            name: name.to_ascii_lowercase(),
            until,
        };
        Ok((ban, online))
    }

    /// `DELETE /v1/admin/bans/{name}`.
    pub fn unban(&mut self, name: &str) -> Result<(), CoreError> {
        if self.bans.lift(name) {
            Ok(())
        } else {
            Err(CoreError::NotFound(format!("{name:?} is not banned")))
        }
    }

    // ---- views ----------------------------------------------------------

    /// Every user, by name.
    pub fn users(&self) -> AdminUsers {
        let mut users: Vec<AdminUser> = self
            .reg
            .users()
            .map(|u| AdminUser {
                name: u.name.clone(),
                status: u.status,
                extension: u.extension.to_string(),
                since: u.since_unix,
                admitted: u.admitted,
            })
            .collect();
        users.sort_by_key(|u| u.name.to_ascii_lowercase());
        AdminUsers { users }
    }

    /// Every pair once.
    pub fn pairs(&self) -> AdminPairs {
        let pairs = self
            .reg
            .pairs()
            .into_iter()
            .map(|(c, e)| AdminPair {
                caller: c.name.clone(),
                callee: e.name.clone(),
                since: c.pair.map(|p| p.since_unix).unwrap_or(0),
                in_call: c.status == Status::InCall && e.status == Status::InCall,
            })
            .collect();
        AdminPairs { pairs }
    }

    /// Reports, oldest first.
    pub fn reports(&self) -> ReportList {
        ReportList {
            reports: self.reports.all(),
        }
    }

    /// Bans in force at `now` (expired ones are forgotten).
    pub fn bans(&mut self, now: At) -> BanList {
        BanList {
            bans: self.bans.active(now.unix()),
        }
    }

    /// What the PBX must hold, by extension.
    pub fn pbx_users(&self) -> Vec<PbxUser> {
        self.reg.pbx_users()
    }

    /// Users registered.
    pub fn user_count(&self) -> usize {
        self.reg.len()
    }

    /// Figures for `/metrics`.
    pub fn counts(&self) -> Counts {
        let mut by_status: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
        for u in self.reg.users() {
            if let Some(slot) = by_status.iter_mut().find(|(s, _)| *s == u.status) {
                slot.1 += 1;
            }
        }
        Counts {
            by_status,
            waiting: self.reg.waiting() as u64,
            pairings_total: self.reg.pairings_total(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    fn ip() -> IpAddr {
        std::net::Ipv4Addr::LOCALHOST.into()
    }

    #[test]
    fn one_clock_drives_token_expiry() {
        let mut core = Core::new(
            CoreConfig {
                token_ttl: 10,
                ..CoreConfig::default()
            },
            Some(1),
        );
        let now = SystemClock.now();
        let mut fx = Effects::default();
        let r = core.register("alice", ip(), now, &mut fx).unwrap();
        assert_eq!(fx.deliveries.len(), 1);
        assert!(fx.pbx_changed);
        assert!(core
            .authenticate(&r.token, now.after(Duration::from_secs(10)))
            .is_ok());
        let late = core.authenticate(&r.token, now.after(Duration::from_secs(11)));
        assert_eq!(late, Err(CoreError::Token(TokenError::Expired)));
    }

    #[test]
    fn a_reused_refresh_token_revokes_its_family() {
        let mut core = Core::new(CoreConfig::default(), Some(2));
        let now = SystemClock.now();
        let mut fx = Effects::default();
        let r = core.register("alice", ip(), now, &mut fx).unwrap();
        let mut fx = Effects::default();
        core.refresh(&r.refresh_token, ip(), now, &mut fx).unwrap();
        assert!(fx.deliveries.is_empty());
        let again = core.refresh(&r.refresh_token, ip(), now, &mut fx);
        assert_eq!(again, Err(CoreError::Token(TokenError::RefreshReused)));
        assert!(matches!(fx.deliveries[..], [Delivery::FamilyRevoked(_)]));
        assert_eq!(
            core.authenticate(&r.token, now).unwrap_err().to_string(),
            SESSION_ENDED
        );
    }

    #[test]
    fn a_kick_says_goodbye_then_tells_the_partner() {
        let mut core = Core::new(CoreConfig::default(), Some(3));
        let now = SystemClock.now();
        let mut fx = Effects::default();
        let a = core.register("alice", ip(), now, &mut fx).unwrap();
        let b = core.register("bob", ip(), now, &mut fx).unwrap();
        let a = core.authenticate(&a.token, now).unwrap().uid;
        let b = core.authenticate(&b.token, now).unwrap().uid;
        core.set_status(a, RequestedStatus::Ready, None, now, &mut fx)
            .unwrap();
        core.set_status(b, RequestedStatus::Ready, None, now, &mut fx)
            .unwrap();
        let mut fx = Effects::default();
        assert_eq!(core.kick("ALICE", &mut fx).unwrap(), "alice");
        assert_eq!(
            fx.deliveries[0],
            Delivery::Left {
                user: a,
                reason: LeaveReason::Kicked,
                farewell: Some(ServerEvent::Kicked)
            }
        );
        assert!(fx.deliveries.contains(&Delivery::Event(
            b,
            ServerEvent::PeerLeft {
                reason: LeaveReason::Kicked
            }
        )));
        assert!(fx.pbx_changed);
        assert!(matches!(
            core.kick("alice", &mut fx),
            Err(CoreError::NotFound(_))
        ));
    }
}
