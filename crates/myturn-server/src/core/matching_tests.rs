//! The matching policy's tests: picks on an injected RNG.

use rand::{rngs::StdRng, SeedableRng};

use super::*;

fn cand(id: UserId) -> Candidate {
    Candidate {
        id,
        live: true,
        last_partner: None,
        has_interests: false,
    }
}

fn tagged(id: UserId) -> Candidate {
    Candidate {
        has_interests: true,
        ..cand(id)
    }
}

const NEW: Seeker = Seeker {
    id: 100,
    last_partner: None,
    has_interests: false,
    plain: true,
};

const TAGGED: Seeker = Seeker {
    has_interests: true,
    plain: false,
    ..NEW
};

fn pick(seeker: &Seeker, shared: &[Candidate], plain: &[Candidate], seed: u64) -> Option<Match> {
    MatchPolicy.pick(seeker, shared, plain, &mut StdRng::seed_from_u64(seed))
}

/// Chi-square of `counts` against equal expectation.
fn chi2(counts: &[u32]) -> f64 {
    let total: u32 = counts.iter().sum();
    let expected = f64::from(total) / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum()
}

#[test]
fn an_empty_or_dead_pool_means_wait() {
    assert_eq!(pick(&NEW, &[], &[], 1), None);
    let dead = [1, 2].map(|id| Candidate {
        live: false,
        ..cand(id)
    });
    assert_eq!(pick(&NEW, &[], &dead, 1), None);
}

#[test]
fn picks_are_uniform_over_live_candidates() {
    // Five waiting users, one of them not live; 20,000 draws.
    let mut pool: Vec<Candidate> = (1..=5).map(cand).collect();
    pool[2].live = false;
    let mut rng = StdRng::seed_from_u64(11);
    let mut counts = [0u32; 5];
    for _ in 0..20_000 {
        let m = MatchPolicy.pick(&NEW, &[], &pool, &mut rng).unwrap();
        assert_eq!((m.draw, m.kind), (Draw::Plain, PairKind::Plain));
        counts[m.index] += 1;
    }
    assert_eq!(counts[2], 0, "a candidate that is not live is never picked");
    // Chi-square over the four live ones, 3 degrees of freedom: p > 0.01
    // below 11.34.
    let live = [counts[0], counts[1], counts[3], counts[4]];
    assert!(chi2(&live) < 11.34, "{counts:?} chi2 {}", chi2(&live));
}

#[test]
fn the_shared_tag_pick_is_uniform() {
    // Five waiting users share a tag with the newcomer; plain users wait
    // too and are never picked while a shared one is live.
    let shared: Vec<Candidate> = (1..=5).map(tagged).collect();
    let plain: Vec<Candidate> = (10..=14).map(cand).collect();
    let mut rng = StdRng::seed_from_u64(23);
    let mut counts = [0u32; 5];
    for _ in 0..20_000 {
        let seeker = Seeker {
            plain: true,
            ..TAGGED
        };
        let m = MatchPolicy
            .pick(&seeker, &shared, &plain, &mut rng)
            .unwrap();
        assert_eq!((m.draw, m.kind), (Draw::Shared, PairKind::Shared));
        counts[m.index] += 1;
    }
    // 4 degrees of freedom: p > 0.01 below 13.28.
    assert!(chi2(&counts) < 13.28, "{counts:?} chi2 {}", chi2(&counts));
}

#[test]
fn a_newcomer_with_interests_waits_for_a_shared_one_before_its_fallback() {
    let plain = [cand(1), tagged(2)];
    // Within its wait: plain users do not count.
    assert_eq!(pick(&TAGGED, &[], &plain, 1), None);
    // After it (the bookkeeping says so with `plain`): anyone in the plain
    // draw, counted as a fallback.
    let late = Seeker {
        plain: true,
        ..TAGGED
    };
    let m = pick(&late, &[], &plain, 1).unwrap();
    assert_eq!((m.draw, m.kind), (Draw::Plain, PairKind::Fallback));
    // A plain newcomer who gets a user whose wait ran out: a fallback too.
    let m = pick(&NEW, &[], &[tagged(2)], 1).unwrap();
    assert_eq!(m.kind, PairKind::Fallback);
}

#[test]
fn the_same_two_again_only_when_nobody_else_waits() {
    let seeker = Seeker {
        last_partner: Some(1),
        ..NEW
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
        let m = MatchPolicy.pick(&seeker, &[], &pool, &mut rng).unwrap();
        assert_eq!(m.index, 2);
    }
    // Nobody else: the last partner is taken rather than waiting.
    assert_eq!(
        MatchPolicy
            .pick(&seeker, &[], &pool[..1], &mut rng)
            .map(|m| m.index),
        Some(0)
    );
    // A fresh candidate that is not live does not count as "someone
    // else waiting".
    let pool = [
        cand(1),
        Candidate {
            live: false,
            ..cand(3)
        },
    ];
    assert_eq!(pick(&seeker, &[], &pool, 4).map(|m| m.index), Some(0));
}

#[test]
fn the_same_two_again_only_when_nobody_else_shares() {
    let seeker = Seeker {
        last_partner: Some(1),
        ..TAGGED
    };
    let shared = [tagged(1), tagged(2)];
    for seed in 0..200 {
        assert_eq!(pick(&seeker, &shared, &[], seed).map(|m| m.index), Some(1));
    }
    // Only the last partner shares: taken rather than waiting.
    assert_eq!(
        pick(&seeker, &shared[..1], &[], 1).map(|m| m.index),
        Some(0)
    );
}

#[test]
fn a_ghost_is_never_picked_from_a_shared_draw() {
    let ghost = Candidate {
        live: false,
        ..tagged(1)
    };
    assert_eq!(pick(&TAGGED, &[ghost], &[], 1), None);
    let late = Seeker {
        plain: true,
        ..TAGGED
    };
    // The ghost is skipped; the live plain user is taken after the wait.
    let m = pick(&late, &[ghost], &[cand(2)], 1).unwrap();
    assert_eq!((m.draw, m.index), (Draw::Plain, 0));
    for seed in 0..100 {
        let m = pick(&TAGGED, &[ghost, tagged(3)], &[], seed).unwrap();
        assert_eq!(m.index, 1, "seed {seed}");
    }
}

/// A draw that counts the members the policy looks at, and knows only
/// those in `known` (a shared store still reading the others).
struct Counting {
    members: Vec<Candidate>,
    known: Option<std::collections::HashSet<usize>>,
    asked: std::cell::RefCell<Vec<usize>>,
}

impl Counting {
    fn new(members: Vec<Candidate>) -> Self {
        Counting {
            members,
            known: None,
            asked: Default::default(),
        }
    }
}

impl DrawView for Counting {
    fn len(&self) -> usize {
        self.members.len()
    }
    fn candidate(&self, index: usize) -> Option<Candidate> {
        self.asked.borrow_mut().push(index);
        match &self.known {
            Some(k) if !k.contains(&index) => None,
            _ => self.members.get(index).copied(),
        }
    }
}

#[test]
fn a_pick_among_live_members_looks_at_one_of_them() {
    let draw = Counting::new((1..=1_000).map(cand).collect());
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..100 {
        draw.asked.borrow_mut().clear();
        let m = MatchPolicy.pick(&NEW, &[], &draw, &mut rng).unwrap();
        assert_eq!(*draw.asked.borrow(), vec![m.index, m.index]);
    }
}

#[test]
fn a_pick_among_few_live_ones_stays_uniform() {
    // 40 members, 3 live: the random tries mostly miss and the full look
    // decides, or a try hits; either way each live one is as likely.
    let mut members: Vec<Candidate> = (1..=40)
        .map(|id| Candidate {
            live: false,
            ..cand(id)
        })
        .collect();
    for i in [3, 17, 38] {
        members[i].live = true;
    }
    let mut rng = StdRng::seed_from_u64(29);
    let mut counts = [0u32; 3];
    for _ in 0..30_000 {
        let m = MatchPolicy.pick(&NEW, &[], &members, &mut rng).unwrap();
        let slot = [3, 17, 38].iter().position(|&i| i == m.index);
        counts[slot.expect("a live member")] += 1;
    }
    // 2 degrees of freedom: p > 0.01 below 9.21.
    assert!(chi2(&counts) < 9.21, "{counts:?} chi2 {}", chi2(&counts));
}

#[test]
fn members_not_read_yet_mean_no_decision_and_every_try_is_asked_at_once() {
    let mut draw = Counting::new((1..=500).map(cand).collect());
    draw.known = Some(Default::default());
    let mut rng = StdRng::seed_from_u64(8);
    assert_eq!(MatchPolicy.pick(&NEW, &[], &draw, &mut rng), None);
    // The tries' members are asked for, and not the whole draw.
    assert_eq!(draw.asked.borrow().len(), TRIES);
    // Once those are read, the same draws decide on them.
    let asked: std::collections::HashSet<usize> = draw.asked.borrow().iter().copied().collect();
    draw.known = Some(asked.clone());
    let m = MatchPolicy
        .pick(&NEW, &[], &draw, &mut StdRng::seed_from_u64(8))
        .unwrap();
    assert!(asked.contains(&m.index));
}
