//! Interest draws on injected time (no sleeping): the shared draw first,
//! the fallback at exactly the wait, `only_interests`, and every rule of
//! the plain draw within an interest draw.

use std::time::Duration;

use myturn_wire::{ServerEvent, Status};

use super::*;
use crate::core::cases::streams::Sweep;
use crate::core::effects::Delivery;
use crate::core::matching::PairKind;
use crate::core::rules::liveness::{stream_closed, stream_opened};
use crate::core::rules::testing::Harness;
use crate::core::usecase::UseCase;

const WAIT: Duration = Duration::from_secs(8);

fn tags(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `id` gives `t` (wait `WAIT`) and says ready at the start.
fn ready_with(h: &mut Harness, id: UserId, t: &[&str], only: bool) {
    set_interests(&mut h.cx(), id, tags(t), WAIT, only).unwrap();
    h.status(id, Status::Ready).unwrap();
}

fn peer(h: &Harness, id: UserId) -> Option<UserId> {
    h.st.user(id)?.pair.as_ref().map(|p| p.peer)
}

/// A sweep `d` after the start.
fn sweep_after(h: &mut Harness, d: Duration) {
    let at = h.t0.after(d);
    Sweep.apply(&mut h.cx_at(at)).unwrap();
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_shared_interest_pairs_at_once_and_both_hear_it() {
    let mut h = Harness::new(1);
    let (a, b, plain) = (h.add("alice"), h.add("bob"), h.add("carol"));
    h.status(plain, Status::Ready).unwrap();
    ready_with(&mut h, a, &["music", "rust"], false);
    assert_eq!(peer(&h, a), None, "a plain user is not a shared one");
    h.take();
    ready_with(&mut h, b, &["chess", "rust"], false);
    assert_eq!(peer(&h, b), Some(a));
    let told: Vec<_> = h
        .take()
        .into_iter()
        .filter_map(|d| match d {
            Delivery::Event(
                u,
                ServerEvent::Paired {
                    shared_interests, ..
                },
            ) => Some((u, shared_interests)),
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 2);
    assert!(told.iter().all(|(_, s)| s == &["rust"]), "{told:?}");
    assert_eq!(
        peer_of(&h.st, a).unwrap().unwrap().shared_interests,
        ["rust"]
    );
    assert_eq!(h.fx.pairings.last().map(|p| p.kind), Some(PairKind::Shared));
    assert_eq!(h.st.user(plain).unwrap().status, Status::Ready);
}

#[test]
fn the_fallback_comes_at_exactly_the_interest_wait() {
    let mut h = Harness::new(2);
    let (a, b) = (h.add("alice"), h.add("bob"));
    ready_with(&mut h, a, &["music"], false);
    assert_eq!(
        h.fx.wake_at,
        Some(h.t0.unix_ms + 8_000),
        "the sweeper is woken then"
    );
    h.status(b, Status::Ready).unwrap();
    assert_eq!(peer(&h, b), None, "within alice's wait, bob does not count");
    sweep_after(&mut h, WAIT - Duration::from_millis(1));
    assert_eq!(peer(&h, a), None);
    sweep_after(&mut h, WAIT);
    assert_eq!(peer(&h, a), Some(b));
    let made = h.fx.pairings.last().copied().unwrap();
    assert_eq!(made.kind, PairKind::Fallback);
    assert_eq!(made.waited, [WAIT, WAIT]);
    assert!(peer_of(&h.st, a)
        .unwrap()
        .unwrap()
        .shared_interests
        .is_empty());
}

#[test]
fn a_newcomer_finds_a_user_whose_wait_ran_out() {
    let mut h = Harness::new(3);
    let (a, b) = (h.add("alice"), h.add("bob"));
    ready_with(&mut h, a, &["music"], false);
    // Past alice's wait, with nobody else: she is in the plain draw.
    sweep_after(&mut h, WAIT);
    assert_eq!(peer(&h, a), None);
    assert!(h.st.user(a).unwrap().in_plain_draw);
    h.status_at(h.t0.after(WAIT * 2), b, Status::Ready).unwrap();
    assert_eq!(peer(&h, b), Some(a));
    assert_eq!(
        h.fx.pairings.last().map(|p| p.kind),
        Some(PairKind::Fallback)
    );
}

#[test]
fn only_interests_never_falls_back() {
    let mut h = Harness::new(4);
    h.rules.cfg.lease = Duration::from_secs(86_400);
    let (a, b, c) = (h.add("alice"), h.add("bob"), h.add("carol"));
    ready_with(&mut h, a, &["music"], true);
    assert_eq!(h.fx.wake_at, None, "no fallback to wake for");
    h.status(b, Status::Ready).unwrap();
    for s in [8, 9, 60, 3600] {
        sweep_after(&mut h, secs(s));
        assert_eq!(peer(&h, a), None, "at {s} s");
    }
    // Someone who shares is still found.
    set_interests(&mut h.cx(), c, tags(&["music"]), WAIT, false).unwrap();
    h.status_at(h.at(3601), c, Status::Ready).unwrap();
    assert_eq!(peer(&h, c), Some(a));
}

#[test]
fn a_plain_newcomer_never_gets_an_interest_user_within_its_wait() {
    let mut h = Harness::new(5);
    let (a, b) = (h.add("alice"), h.add("bob"));
    ready_with(&mut h, a, &["music"], false);
    h.status_at(h.at(7), b, Status::Ready).unwrap();
    assert_eq!(peer(&h, b), None);
    // At alice's fallback the two meet.
    sweep_after(&mut h, secs(8));
    assert_eq!(peer(&h, b), Some(a));
}

#[test]
fn the_same_two_are_not_paired_again_within_an_interest_draw() {
    for seed in 0..30 {
        let mut h = Harness::new(seed);
        let (a, b, d) = (h.add("alice"), h.add("bob"), h.add("dave"));
        ready_with(&mut h, a, &["music", "rust"], false);
        ready_with(&mut h, b, &["music"], false);
        assert_eq!(peer(&h, a), Some(b));
        h.status(a, Status::Busy).unwrap();
        // Bob and dave wait, sharing nothing with each other but each an
        // interest with alice; alice, back, gets dave, not bob again.
        ready_with(&mut h, b, &["music"], false);
        ready_with(&mut h, d, &["rust"], false);
        assert_eq!(peer(&h, b), None);
        ready_with(&mut h, a, &["music", "rust"], false);
        assert_eq!(peer(&h, a), Some(d), "seed {seed}");
    }
}

#[test]
fn a_ghost_is_never_picked_from_an_interest_draw() {
    let mut h = Harness::new(6);
    let t = h.t0.unix_ms;
    let (ghost, b) = (h.add("ghost"), h.add("bob"));
    stream_opened(&mut h.st, ghost, "n1", t);
    ready_with(&mut h, ghost, &["music"], false);
    stream_closed(&mut h.st, ghost, t, t);
    h.status_at(h.at(1), b, Status::Ready).unwrap();
    set_interests(&mut h.cx_at(h.at(1)), b, tags(&["music"]), WAIT, false).unwrap();
    assert_eq!(peer(&h, b), None);
    // Nor at bob's fallback, nor by a rematch.
    sweep_after(&mut h, secs(2));
    assert_eq!(peer(&h, b), None);
}

#[test]
fn new_interests_while_waiting_move_the_user_to_the_new_draws() {
    let mut h = Harness::new(7);
    let (a, b) = (h.add("alice"), h.add("bob"));
    ready_with(&mut h, a, &["music"], false);
    ready_with(&mut h, b, &["chess"], false);
    assert_eq!(peer(&h, a), None);
    // Bob, still waiting, changes his mind: paired with alice at once.
    set_interests(&mut h.cx(), b, tags(&["jazz", "music"]), WAIT, false).unwrap();
    assert_eq!(peer(&h, b), Some(a));
    assert!(h.st.draw(&DrawKey::Tag("chess".into())).is_empty());
}

#[test]
fn with_no_interests_given_everyone_is_in_the_plain_draw_at_once() {
    let mut h = Harness::new(8);
    let (a, b) = (h.add("alice"), h.add("bob"));
    set_interests(&mut h.cx(), a, Vec::new(), WAIT, false).unwrap();
    h.status(a, Status::Ready).unwrap();
    h.status(b, Status::Ready).unwrap();
    assert_eq!(peer(&h, a), Some(b));
    assert_eq!(h.fx.pairings.last().map(|p| p.kind), Some(PairKind::Plain));
    assert_eq!(h.fx.wake_at, None);
}
