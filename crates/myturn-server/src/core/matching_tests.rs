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
