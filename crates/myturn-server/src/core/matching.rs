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
//!   likely (draws from the injected RNG).
//!
//! The policy looks at as few candidates as it can, because in a shared
//! store each look is a record read: it draws a member of the draw at
//! random and takes it if it is live and not the same two again,
//! [`TRIES`] times, and only if none was taken does it look at every
//! member. Each try that is taken is uniform over the acceptable
//! members (rejection sampling), and the full look is uniform over them
//! too, so the pick is uniform either way; with everyone live, one
//! record is read instead of the whole draw. A draw is a [`DrawView`]:
//! members by index, each looked up on demand, or not known yet (a shared
//! store still reading it), and then the policy waits for the read.
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

/// How many random members a draw's pick looks at before it looks at
/// every member.
pub const TRIES: usize = 8;

/// One draw, as the policy reads it: its members by index, each looked up
/// only when the policy asks.
pub trait DrawView {
    /// How many members.
    fn len(&self) -> usize;
    /// Whether it has none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The member at `index`, or `None` if it is not known yet (a shared
    /// store is reading it: whatever this pick decides is then thrown
    /// away, and the pick is made again once it is read).
    fn candidate(&self, index: usize) -> Option<Candidate>;
}

impl DrawView for [Candidate] {
    fn len(&self) -> usize {
        <[Candidate]>::len(self)
    }
    fn candidate(&self, index: usize) -> Option<Candidate> {
        self.get(index).copied()
    }
}

impl DrawView for Vec<Candidate> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn candidate(&self, index: usize) -> Option<Candidate> {
        self.get(index).copied()
    }
}

impl<const N: usize> DrawView for [Candidate; N] {
    fn len(&self) -> usize {
        N
    }
    fn candidate(&self, index: usize) -> Option<Candidate> {
        self.get(index).copied()
    }
}

/// The policy. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchPolicy;

impl MatchPolicy {
    /// The partner for `seeker` among `shared` (who share an interest)
    /// and `plain` (the plain draw), or `None`: wait (also when a
    /// member it looked at is not known yet). Draws from `rng` only when a
    /// draw has members.
    pub fn pick<S, P>(
        &self,
        seeker: &Seeker,
        shared: &S,
        plain: &P,
        rng: &mut dyn RngCore,
    ) -> Option<Match>
    where
        S: DrawView + ?Sized,
        P: DrawView + ?Sized,
    {
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
        let partner_has = plain.candidate(index).is_some_and(|c| c.has_interests);
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
/// again while anyone else live waits there: [`TRIES`] random members
/// first, then every member (see the module docs). `None` also when a
/// member it looked at is not known yet.
fn uniform<D: DrawView + ?Sized>(
    seeker: &Seeker,
    draw: &D,
    rng: &mut dyn RngCore,
) -> Option<usize> {
    let n = draw.len();
    if n == 0 {
        return None;
    }
    let mut unknown = false;
    for _ in 0..TRIES {
        let i = rng.gen_range(0..n);
        match draw.candidate(i) {
            Some(c) if c.live && !c.again(seeker) && !unknown => return Some(i),
            Some(_) => {}
            // Not read yet: go on drawing, so that every member these
            // tries need is read at once, but decide nothing.
            None => unknown = true,
        }
    }
    if unknown {
        return None;
    }
    let mut live: Vec<(usize, Candidate)> = Vec::new();
    for i in 0..n {
        match draw.candidate(i) {
            Some(c) if c.live => live.push((i, c)),
            Some(_) => {}
            None => unknown = true,
        }
    }
    if unknown {
        return None;
    }
    let fresh: Vec<usize> = live
        .iter()
        .filter(|(_, c)| !c.again(seeker))
        .map(|&(i, _)| i)
        .collect();
    let pick: Vec<usize> = if fresh.is_empty() {
        live.iter().map(|&(i, _)| i).collect()
    } else {
        fresh
    };
    if pick.is_empty() {
        return None;
    }
    pick.get(rng.gen_range(0..pick.len())).copied()
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
