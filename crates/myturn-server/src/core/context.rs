//! What every rule runs with: the tunables ([`CoreConfig`]), the fixed
//! parts ([`Rules`]: configuration, token signer, matching policy) and,
//! per use case, the [`Ctx`]: the state, the randomness, the moment and
//! the effects being written.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;

use super::blocklist::Blocklist;
use super::effects::Effects;
use super::matching::MatchPolicy;
use super::state::State;
use super::tokens::Jwt;
use crate::clock::At;

/// What the core is told at start.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Most users at once.
    pub max_users: usize,
    /// Moderated admission: ready users wait in the waiting room until an
    /// admin admits them into the pairing pool.
    pub moderated: bool,
    /// A user with an event stream is paired only if it was heard within
    /// this long (its pongs, every third of it), and not while its stream
    /// is closed: nobody is handed a partner that may be gone.
    pub liveness: Duration,
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
    /// Longest wait for a shared interest before the plain draw (a client
    /// may ask for less).
    pub interest_wait: Duration,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            max_users: 100_000,
            moderated: false,
            liveness: Duration::from_secs(3),
            sip_domain: "127.0.0.1:5060".into(),
            token_ttl: 900,
            lease: Duration::from_secs(300),
            stream_grace: Duration::from_secs(3),
            answer_timeout: Duration::from_secs(45),
            rate_limits: true,
            interest_wait: Duration::from_secs(8),
        }
    }
}

/// The fixed parts every use case reads: the configuration, the token
/// signer and the matching policy. Shared, never changed by a use case.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The tunables.
    pub cfg: CoreConfig,
    /// Signs access tokens.
    pub jwt: Arc<Jwt>,
    /// Picks partners.
    pub matching: MatchPolicy,
    /// Interests the operator refuses (`--interest-blocklist`).
    pub blocklist: Arc<Blocklist>,
}

/// One use case's world: the records, the randomness, the moment, and
/// the effects it writes.
pub struct Ctx<'a> {
    /// The records.
    pub st: &'a mut dyn State,
    /// The fixed parts.
    pub rules: &'a Rules,
    /// Secrets, partner picks, roles, pair ids.
    pub rng: &'a mut dyn RngCore,
    /// Refresh tokens.
    pub token_rng: &'a mut dyn RngCore,
    /// When it happens.
    pub now: At,
    /// What the world must learn from it.
    pub fx: &'a mut Effects,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("st", &self.st)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Ctx<'_> {
    /// The tunables.
    pub fn cfg(&self) -> &CoreConfig {
        &self.rules.cfg
    }
}
