//! The pairing policy: whom a newcomer to the pool is paired with.
//!
//! This module decides; it keeps no state and changes none. The pair
//! bookkeeping (`rules::pairs`) hands it the newcomer and the waiting
//! users as [`Candidate`]s, and makes the pair it picks. Today's rules:
//!
//! * **liveness**: only users who may be handed out are candidates (see
//!   [`Candidate::live`]; a user whose event stream closed, or who has
//!   not answered pings lately, waits instead);
//! * **not the same two again while someone else waits**: a candidate who
//!   was the newcomer's last partner, or whose last partner was the
//!   newcomer, is taken only if no other live candidate waits;
//! * **uniform**: among those that remain, every candidate is equally
//!   likely (one draw from the injected RNG).
//!
//! A new matching rule is a change here, with its own tests below.

use rand::{Rng, RngCore};

use super::state::UserId;

/// Who is looking for a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeker {
    /// The newcomer.
    pub id: UserId,
    /// Their last partner, if any.
    pub last_partner: Option<UserId>,
}

/// A waiting user, as the policy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Who.
    pub id: UserId,
    /// May be handed out now (stream open and heard lately, or an
    /// HTTP-only user within the lease).
    pub live: bool,
    /// Their last partner, if any.
    pub last_partner: Option<UserId>,
}

impl Candidate {
    /// Whether pairing `seeker` with this candidate would pair the same
    /// two again.
    fn again(&self, seeker: &Seeker) -> bool {
        Some(self.id) == seeker.last_partner || self.last_partner == Some(seeker.id)
    }
}

/// The policy. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchPolicy;

impl MatchPolicy {
    /// The index in `pool` of the partner for `seeker`, or `None`: wait.
    /// Draws from `rng` only when there is a choice to make.
    pub fn pick(
        &self,
        seeker: &Seeker,
        pool: &[Candidate],
        rng: &mut dyn RngCore,
    ) -> Option<usize> {
        let live: Vec<usize> = (0..pool.len())
            .filter(|&i| pool.get(i).is_some_and(|c| c.live))
            .collect();
        let fresh: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| pool.get(i).is_some_and(|c| !c.again(seeker)))
            .collect();
        let draw = if fresh.is_empty() { &live } else { &fresh };
        if draw.is_empty() {
            return None;
        }
        draw.get(rng.gen_range(0..draw.len())).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn cand(id: UserId) -> Candidate {
        Candidate {
            id,
            live: true,
            last_partner: None,
        }
    }

    const NEW: Seeker = Seeker {
        id: 100,
        last_partner: None,
    };

    #[test]
    fn an_empty_or_dead_pool_means_wait() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(MatchPolicy.pick(&NEW, &[], &mut rng), None);
        let dead = [1, 2].map(|id| Candidate {
            live: false,
            ..cand(id)
        });
        assert_eq!(MatchPolicy.pick(&NEW, &dead, &mut rng), None);
    }

    #[test]
    fn picks_are_uniform_over_live_candidates() {
        // Five waiting users, one of them not live; 20,000 draws.
        let mut pool: Vec<Candidate> = (1..=5).map(cand).collect();
        pool[2].live = false;
        let mut rng = StdRng::seed_from_u64(11);
        let mut counts = [0u32; 5];
        for _ in 0..20_000 {
            let i = MatchPolicy.pick(&NEW, &pool, &mut rng).unwrap();
            counts[i] += 1;
        }
        assert_eq!(counts[2], 0, "a candidate that is not live is never picked");
        // Chi-square over the four live ones, 3 degrees of freedom:
        // p > 0.01 below 11.34.
        let expected = 5000.0;
        let chi2: f64 = [0, 1, 3, 4]
            .iter()
            .map(|&i| (f64::from(counts[i]) - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 11.34, "{counts:?} chi2 {chi2}");
    }

    #[test]
    fn the_same_two_again_only_when_nobody_else_waits() {
        let seeker = Seeker {
            id: 100,
            last_partner: Some(1),
        };
        let mut rng = StdRng::seed_from_u64(3);
        // 1 was the seeker's last partner; 2's last partner was the seeker.
        let pool = [
            cand(1),
            Candidate {
                last_partner: Some(100),
                ..cand(2)
            },
            cand(3),
        ];
        for _ in 0..200 {
            assert_eq!(MatchPolicy.pick(&seeker, &pool, &mut rng), Some(2));
        }
        // Nobody else: the last partner is taken rather than waiting.
        assert_eq!(MatchPolicy.pick(&seeker, &pool[..1], &mut rng), Some(0));
        // A fresh candidate that is not live does not count as "someone
        // else waiting".
        let pool = [
            cand(1),
            Candidate {
                live: false,
                ..cand(3)
            },
        ];
        assert_eq!(MatchPolicy.pick(&seeker, &pool, &mut rng), Some(0));
    }
}
