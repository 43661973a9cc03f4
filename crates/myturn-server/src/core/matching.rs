//! The pairing policy: whom a newcomer to the pool is paired with.
//!
//! This module decides; it keeps no state and changes none. The pair
//! bookkeeping (`rules::pairs`) hands it the newcomer and the waiting
//! users as [`Candidate`]s, in two draws, and makes the pair it picks:
//!
//! * the **shared draw**: the waiting users who share at least one
//!   interest with the newcomer (empty when it gave none);
//! * the **plain draw**: the users with no interests, and those whose
//!   interest wait ran out (consulted only when the newcomer is in the
//!   plain draw itself: no interests, or its own wait ran out, and not
//!   `only_interests`).
//!
//! Within a draw, today's rules:
//!
//! * **liveness**: only users who may be handed out are candidates (see
//!   [`Candidate::live`]; a user whose event stream closed, or who has
//!   not answered pings lately, waits instead);
//! * **not the same two again while someone else waits**: a candidate who
//!   was the newcomer's last partner, or whose last partner was the
//!   newcomer, is taken only if no other live candidate of that draw
//!   waits;
//! * **uniform**: among those that remain, every candidate is equally
//!   likely (one draw from the injected RNG).
//!
//! The shared draw comes first: a newcomer with interests is paired among
//! those who share one, and only after its wait with anyone. A new
//! matching rule is a change here, with its own tests below.

use rand::{Rng, RngCore};

use super::state::UserId;

/// Who is looking for a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeker {
    /// The newcomer.
    pub id: UserId,
    /// Their last partner, if any.
    pub last_partner: Option<UserId>,
    /// Gave interests.
    pub has_interests: bool,
    /// In the plain draw (no interests, or its wait ran out, and not
    /// `only_interests`).
    pub plain: bool,
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
    /// Gave interests.
    pub has_interests: bool,
}

impl Candidate {
    /// Whether pairing `seeker` with this candidate would pair the same
    /// two again.
    fn again(&self, seeker: &Seeker) -> bool {
        Some(self.id) == seeker.last_partner || self.last_partner == Some(seeker.id)
    }
}

/// How a pair came to be: what `/metrics` counts pairings by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PairKind {
    /// The two share an interest.
    Shared,
    /// In the plain draw, where one of them gave interests that nobody
    /// waiting shared in time.
    Fallback,
    /// In the plain draw, neither gave interests.
    Plain,
}

impl PairKind {
    /// Every kind, in a fixed order.
    pub const ALL: [PairKind; 3] = [PairKind::Shared, PairKind::Fallback, PairKind::Plain];

    /// As `/metrics` labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            PairKind::Shared => "shared",
            PairKind::Fallback => "fallback",
            PairKind::Plain => "plain",
        }
    }
}

/// Which draw a pick came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// The waiting users who share an interest.
    Shared,
    /// The plain draw.
    Plain,
}

/// The partner picked: its index in its draw, and the pair's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The draw the partner is in.
    pub draw: Draw,
    /// Its index there.
    pub index: usize,
    /// How to count the pair.
    pub kind: PairKind,
}

/// The policy. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchPolicy;

impl MatchPolicy {
    /// The partner for `seeker` among `shared` (who share an interest)
    /// and `plain` (the plain draw), or `None`: wait. Draws from `rng`
    /// only when there is a choice to make.
    pub fn pick(
        &self,
        seeker: &Seeker,
        shared: &[Candidate],
        plain: &[Candidate],
        rng: &mut dyn RngCore,
    ) -> Option<Match> {
        if let Some(index) = uniform(seeker, shared, rng) {
            return Some(Match {
                draw: Draw::Shared,
                index,
                kind: PairKind::Shared,
            });
        }
        if !seeker.plain {
            return None;
        }
        let index = uniform(seeker, plain, rng)?;
        let partner_has = plain.get(index).is_some_and(|c| c.has_interests);
        let kind = if seeker.has_interests || partner_has {
            PairKind::Fallback
        } else {
            PairKind::Plain
        };
        Some(Match {
            draw: Draw::Plain,
            index,
            kind,
        })
    }
}

/// Uniform among the live candidates of one draw, avoiding the same two
/// again while anyone else live waits there.
fn uniform(seeker: &Seeker, draw: &[Candidate], rng: &mut dyn RngCore) -> Option<usize> {
    let live: Vec<usize> = (0..draw.len())
        .filter(|&i| draw.get(i).is_some_and(|c| c.live))
        .collect();
    let fresh: Vec<usize> = live
        .iter()
        .copied()
        .filter(|&i| draw.get(i).is_some_and(|c| !c.again(seeker)))
        .collect();
    let pick = if fresh.is_empty() { &live } else { &fresh };
    if pick.is_empty() {
        return None;
    }
    pick.get(rng.gen_range(0..pick.len())).copied()
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
