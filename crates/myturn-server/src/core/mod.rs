//! The rules of the pairing service, sans-IO: no axum, no HTTP types, no
//! sockets, no clock reads, no tasks.
//!
//! * [`command`]: every use case once. A use case is a struct of its
//!   inputs with one [`UseCase::apply`]; [`Command`] lists them all and
//!   [`Reply`] their answers, so a store runs any of them through one
//!   `apply`.
//! * [`cases`]: the use cases (account, status, streams, lobby,
//!   moderation, views).
//! * `rules`: the bookkeeping they share (users, session families, pairs,
//!   liveness, rate limits).
//! * [`matching`]: the pairing policy, which picks a partner and keeps no
//!   state.
//! * [`state`]: the records, and [`State`], the interface a state backend
//!   provides to the rules ([`MemState`] in memory).
//! * [`effects`]: what a use case asks of the world ([`Effects`]), written
//!   instead of done.
//! * [`error`]: why a use case was refused ([`CoreError`], typed).
//! * [`tokens`]: access-token signing and checking.
//!
//! Each use case runs with a [`Ctx`]: the state, the fixed [`Rules`],
//! the injected randomness, the moment ([`At`], read once by the caller
//! from a [`Clock`](crate::clock::Clock)) and the effects to write.
//! [`Core`] bundles an in-memory state with its rules and randomness:
//!
//! ```
//! use myturn_server::clock::{Clock, SystemClock};
//! use myturn_server::core::cases::account::{Authenticate, Register};
//! use myturn_server::core::cases::status::{PeerOf, SetStatus};
//! use myturn_server::core::{Core, CoreConfig, Effects};
//! use myturn_wire::RequestedStatus;
//!
//! let mut core = Core::new(CoreConfig::default(), Some(7));
//! let now = SystemClock.now();
//! let mut fx = Effects::default();
//! let ip = std::net::Ipv4Addr::LOCALHOST.into();
//! let mut login = |core: &mut Core, name: &str, fx: &mut Effects| {
//!     let r = core.apply(Register { name: name.into(), ip }, now, fx).unwrap();
//!     let claims = core.verify(&r.token, now).unwrap();
//!     core.apply(Authenticate { claims }, now, fx).unwrap().uid
//! };
//! let a = login(&mut core, "alice", &mut fx);
//! let b = login(&mut core, "bob", &mut fx);
//! for uid in [a, b] {
//!     let ready = SetStatus::to(uid, RequestedStatus::Ready);
//!     core.apply(ready, now, &mut fx).unwrap();
//! }
//! assert!(core.apply(PeerOf { uid: a }, now, &mut fx).unwrap().is_some()); // paired
//! ```

pub mod blocklist;
pub mod cases;
pub mod command;
mod context;
pub mod effects;
pub mod error;
pub mod matching;
mod rules;
pub mod state;
pub mod tokens;
mod usecase;

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::SeedableRng;

pub use cases::lobby::{Speaker, MODERATOR};
pub use cases::moderation::Admit;
pub use cases::streams::Swept;
pub use cases::views::Figures as Counts;
pub use command::{Command, Listed, Reply};
pub use context::{CoreConfig, Ctx, Rules};
pub use effects::{Delivery, Effects};
pub use error::CoreError;
pub use state::{Due, MemState, Millis, NodeId, PbxUser, State, StateExt, UserId};

/// The key a user is indexed by for `due` (see [`State::due`]): the rules'
/// one definition, for stores that keep an index by it.
pub fn due_key(due: Due, user: &state::User) -> Option<Millis> {
    match due {
        Due::StreamLost => rules::liveness::stream_lost_key(user),
        Due::Silent => rules::liveness::silent_key(user),
        Due::Unanswered => rules::pairs::unanswered_key(user),
        Due::Fallback => rules::pairs::fallback_key(user),
    }
}
pub use tokens::{Claims, Jwt, TokenError};
pub use usecase::UseCase;

use crate::clock::At;
use blocklist::Blocklist;
use matching::MatchPolicy;

/// The rules over an in-memory state, with their randomness: what the
/// memory store keeps behind its lock.
#[derive(Debug)]
pub struct Core {
    rules: Rules,
    state: MemState,
    rng: StdRng,
    token_rng: StdRng,
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
            rules: Rules {
                cfg,
                jwt,
                matching: MatchPolicy,
                blocklist: Arc::new(Blocklist::default()),
            },
            state: MemState::default(),
            rng,
            token_rng: seeded(0x5eed_0f70_6be5),
        }
    }

    /// The fixed parts: configuration, signer, matching policy.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The same core refusing the interests `blocklist` holds (shared:
    /// the node swaps its terms in on SIGHUP).
    pub fn with_blocklist(mut self, blocklist: Arc<Blocklist>) -> Self {
        self.rules.blocklist = blocklist;
        self
    }

    /// The same core signing and checking tokens with `jwt` (the keys
    /// every node shares: `--jwt-key-file`).
    pub fn with_signer(mut self, jwt: Arc<Jwt>) -> Self {
        self.rules.jwt = jwt;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.rules.cfg
    }

    /// The access-token signer (shared with the node, which checks tokens
    /// of streams it holds).
    pub fn signer(&self) -> Arc<Jwt> {
        self.rules.jwt.clone()
    }

    /// Checks an access token's signature, audience and expiry at `now`
    /// (no state needed: callers do it before [`Core::apply`]).
    pub fn verify(&self, token: &str, now: At) -> Result<Claims, CoreError> {
        Ok(self.rules.jwt.verify(token, now.unix())?)
    }

    /// Tests only: the records.
    #[doc(hidden)]
    pub fn state(&mut self) -> &mut MemState {
        &mut self.state
    }

    fn cx<'a>(&'a mut self, now: At, fx: &'a mut Effects) -> Ctx<'a> {
        Ctx {
            st: &mut self.state,
            rules: &self.rules,
            rng: &mut self.rng,
            token_rng: &mut self.token_rng,
            now,
            fx,
        }
    }

    /// Runs one use case at `now`, writing its effects into `fx`.
    pub fn apply<U: UseCase>(
        &mut self,
        case: U,
        now: At,
        fx: &mut Effects,
    ) -> Result<U::Output, CoreError> {
        case.apply(&mut self.cx(now, fx))
    }

    /// Runs a command at `now`, writing its effects into `fx`.
    pub fn execute(
        &mut self,
        command: Command,
        now: At,
        fx: &mut Effects,
    ) -> Result<Reply, CoreError> {
        command.apply(&mut self.cx(now, fx))
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
