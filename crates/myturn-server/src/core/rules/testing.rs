//! Tests only: the rules run against an in-memory state with a seeded
//! RNG and injected time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use myturn_wire::Status;
use rand::{rngs::StdRng, SeedableRng};

use crate::clock::At;
use crate::core::context::{CoreConfig, Ctx, Rules};
use crate::core::effects::{Delivery, Effects};
use crate::core::error::CoreError;
use crate::core::matching::MatchPolicy;
use crate::core::state::{MemState, UserId};
use crate::core::tokens::Jwt;

/// A state, the fixed parts, seeded randomness and a start time.
pub(crate) struct Harness {
    pub(crate) st: MemState,
    pub(crate) rules: Rules,
    pub(crate) rng: StdRng,
    pub(crate) token_rng: StdRng,
    pub(crate) fx: Effects,
    pub(crate) t0: At,
}

impl Harness {
    /// Default configuration, randomness from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let jwt = Arc::new(Jwt::new(&mut rng, 900));
        Harness {
            st: MemState::default(),
            rules: Rules {
                cfg: CoreConfig::default(),
                jwt,
                matching: MatchPolicy,
            },
            rng: StdRng::seed_from_u64(seed),
            token_rng: StdRng::seed_from_u64(seed ^ 1),
            fx: Effects::default(),
            t0: At::new(Instant::now(), 1_800_000_000_000),
        }
    }

    /// The moment `secs` after the start.
    pub(crate) fn at(&self, secs: u64) -> At {
        self.t0.after(Duration::from_secs(secs))
    }

    /// A context at the start.
    pub(crate) fn cx(&mut self) -> Ctx<'_> {
        let t0 = self.t0;
        self.cx_at(t0)
    }

    /// A context at `now`.
    pub(crate) fn cx_at(&mut self, now: At) -> Ctx<'_> {
        Ctx {
            st: &mut self.st,
            rules: &self.rules,
            rng: &mut self.rng,
            token_rng: &mut self.token_rng,
            now,
            fx: &mut self.fx,
        }
    }

    /// Registers `name` at the start.
    pub(crate) fn add(&mut self, name: &str) -> UserId {
        crate::core::rules::users::add(&mut self.cx(), name).unwrap()
    }

    /// Sets a status at the start.
    pub(crate) fn status(&mut self, id: UserId, status: Status) -> Result<(), CoreError> {
        crate::core::rules::pairs::set_status(&mut self.cx(), id, status)
    }

    /// Sets a status at `now`.
    pub(crate) fn status_at(
        &mut self,
        now: At,
        id: UserId,
        status: Status,
    ) -> Result<(), CoreError> {
        crate::core::rules::pairs::set_status(&mut self.cx_at(now), id, status)
    }

    /// The deliveries written since the last call.
    pub(crate) fn take(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.fx.deliveries)
    }
}
