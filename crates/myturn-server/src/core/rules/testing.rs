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
                blocklist: Default::default(),
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

    /// Puts `id` straight into the pool's plain draw, as waiting (tests
    /// that arrange a pool by hand).
    pub(crate) fn put_in_pool(&mut self, id: UserId) {
        use crate::core::state::{DrawKey, State as _};
        self.st.pool_insert(id);
        self.st.draw_insert(&DrawKey::Plain, id);
        if let Some(u) = self.st.user_mut(id) {
            u.in_plain_draw = true;
        }
    }

    /// Empties the pool and its plain draw by hand.
    pub(crate) fn empty_pool(&mut self) {
        use crate::core::state::{DrawKey, State as _};
        while let Some(&x) = self.st.pool().first() {
            self.st.pool_remove(x);
            self.st.draw_remove(&DrawKey::Plain, x);
        }
    }

    /// The deliveries written since the last call.
    pub(crate) fn take(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.fx.deliveries)
    }
}
