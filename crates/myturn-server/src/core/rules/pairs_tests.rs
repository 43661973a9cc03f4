//! The pair bookkeeping's tests (moved from the old registry's).

use std::time::Duration;

use myturn_wire::{LeaveReason, Role, ServerEvent, Status};

use super::*;
use crate::core::effects::Delivery;
use crate::core::rules::liveness::{stream_closed, stream_opened, touch};
use crate::core::rules::testing::Harness;
use crate::core::rules::users;
use crate::core::state::StateExt;

fn told(d: &[Delivery], user: UserId, event: &ServerEvent) -> bool {
    d.contains(&Delivery::Event(user, event.clone()))
}

fn paired(d: &[Delivery], user: UserId) -> bool {
    d.iter()
        .any(|x| matches!(x, Delivery::Event(u, ServerEvent::Paired { .. }) if *u == user))
}

#[test]
fn two_ready_users_pair_with_opposite_roles() {
    let mut h = Harness::new(3);
    let a = h.add("alice");
    let b = h.add("bob");
    assert_eq!(peer_of(&h.st, a).unwrap_err(), CoreError::NotReady);
    h.status(a, Status::Ready).unwrap();
    assert_eq!(peer_of(&h.st, a).unwrap(), None);
    h.take();
    h.status(b, Status::Ready).unwrap();
    let n = h.take();
    let pa = peer_of(&h.st, a).unwrap().unwrap();
    let pb = peer_of(&h.st, b).unwrap().unwrap();
    assert_eq!(pa.peer.name, "bob");
    assert_eq!(pb.peer.name, "alice");
    assert_eq!(pa.role, pb.role.opposite());
    // One pair, one id on both sides, also in the pushed events.
    assert_eq!(pa.pair_id, pb.pair_id);
    for x in &n {
        if let Delivery::Event(_, ServerEvent::Paired { pair_id, .. }) = x {
            assert_eq!(pair_id, &pa.pair_id);
        }
    }
    assert_eq!(h.st.user(a).unwrap().status, Status::Paired);
    assert!(paired(&n, a));
    assert!(paired(&n, b));
    assert_eq!(h.st.pairings_total(), 1);
    assert_eq!(h.st.pool().len(), 0);
}

#[test]
fn ready_to_talk_on_both_sides_means_in_call() {
    let mut h = Harness::new(3);
    let a = h.add("alice");
    let b = h.add("bob");
    assert_eq!(
        h.status(a, Status::ReadyToTalk).unwrap_err(),
        CoreError::NotPaired
    );
    h.status(a, Status::Ready).unwrap();
    h.status(b, Status::Ready).unwrap();
    h.take();
    h.status(a, Status::ReadyToTalk).unwrap();
    assert!(told(&h.take(), b, &ServerEvent::PeerReadyToTalk));
    assert_eq!(
        peer_of(&h.st, b).unwrap().unwrap().peer_status,
        Status::ReadyToTalk
    );
    h.status(b, Status::ReadyToTalk).unwrap();
    assert_eq!(h.st.user(a).unwrap().status, Status::InCall);
    assert_eq!(h.st.user(b).unwrap().status, Status::InCall);
    // Hang up: the partner goes back to busy and hears it.
    h.take();
    h.status(a, Status::Busy).unwrap();
    assert!(told(
        &h.take(),
        b,
        &ServerEvent::PeerLeft {
            reason: LeaveReason::HungUp
        }
    ));
    assert_eq!(h.st.user(b).unwrap().status, Status::Busy);
    assert!(h.st.user(b).unwrap().pair.is_none());
    assert!(crate::core::cases::views::pairs_of(&h.st).is_empty());
}

#[test]
fn removing_a_paired_user_frees_the_partner() {
    let mut h = Harness::new(3);
    let a = h.add("alice");
    let b = h.add("bob");
    h.status(a, Status::Ready).unwrap();
    h.status(b, Status::Ready).unwrap();
    h.take();
    users::remove(&mut h.cx(), a, LeaveReason::Kicked, None).unwrap();
    assert!(told(
        &h.take(),
        b,
        &ServerEvent::PeerLeft {
            reason: LeaveReason::Kicked
        }
    ));
    assert_eq!(h.st.user(b).unwrap().status, Status::Busy);
    assert!(h.st.find("alice").is_none());
    assert!(h.st.by_extension(111_000).is_none());
    assert_eq!(crate::core::cases::views::pbx_users_of(&h.st).len(), 1);
}

#[test]
fn the_same_two_are_not_paired_twice_while_someone_else_waits() {
    for seed in 0..50 {
        let mut h = Harness::new(seed);
        let a = h.add("alice");
        let b = h.add("bob");
        let c = h.add("carol");
        h.status(a, Status::Ready).unwrap();
        h.status(b, Status::Ready).unwrap();
        h.status(a, Status::Busy).unwrap();
        // carol waits, then alice comes back: she must get carol, not bob...
        h.status(c, Status::Ready).unwrap();
        h.status(b, Status::Ready).unwrap();
        // ...bob arrived while carol waited, so bob got carol.
        assert_eq!(peer_of(&h.st, b).unwrap().unwrap().peer.name, "carol");
        // With a pool of {alice's last partner, someone new} she takes the new one.
        let d = h.add("dave");
        h.status(b, Status::Busy).unwrap();
        h.status(c, Status::Busy).unwrap();
        h.empty_pool();
        h.put_in_pool(b);
        h.put_in_pool(d);
        h.st.user_mut(b).unwrap().status = Status::Ready;
        h.st.user_mut(d).unwrap().status = Status::Ready;
        h.st.user_mut(b).unwrap().last_partner = Some(a);
        h.st.user_mut(a).unwrap().last_partner = Some(b);
        h.status(a, Status::Ready).unwrap();
        assert_eq!(
            peer_of(&h.st, a).unwrap().unwrap().peer.name,
            "dave",
            "seed {seed}"
        );
    }
}

#[test]
fn the_last_partner_is_taken_when_nobody_else_waits() {
    let mut h = Harness::new(5);
    let a = h.add("alice");
    let b = h.add("bob");
    h.status(a, Status::Ready).unwrap();
    h.status(b, Status::Ready).unwrap();
    h.status(a, Status::Ready).unwrap(); // "next": ends the pair, bob → busy
    h.status(b, Status::Ready).unwrap();
    assert_eq!(peer_of(&h.st, a).unwrap().unwrap().peer.name, "bob");
}

#[test]
fn picks_are_uniform_over_waiting_users() {
    // Pool of 4 waiting users; a fifth arrives 4000 times.
    let mut counts = [0u32; 4];
    let mut h = Harness::new(11);
    let waiting: Vec<UserId> = (0..4).map(|i| h.add(&format!("wait{i}"))).collect();
    let x = h.add("newcomer");
    for _ in 0..4000 {
        h.empty_pool();
        for &w in &waiting {
            h.put_in_pool(w);
            let u = h.st.user_mut(w).unwrap();
            u.status = Status::Ready;
            u.pair = None;
            u.last_partner = None;
        }
        let u = h.st.user_mut(x).unwrap();
        u.status = Status::Busy;
        u.pair = None;
        u.last_partner = None;
        h.status(x, Status::Ready).unwrap();
        let peer = h.st.user(x).unwrap().pair.as_ref().unwrap().peer;
        let i = waiting.iter().position(|&w| w == peer).unwrap();
        counts[i] += 1;
    }
    // Each expected 1000; a 5-sigma band for Binomial(4000, 1/4) is ±137.
    for c in counts {
        assert!((863..=1137).contains(&c), "{counts:?}");
    }
}

#[test]
fn moderated_admission_holds_ready_users_until_admitted() {
    let mut h = Harness::new(9);
    h.rules.cfg.moderated = true;
    let a = h.add("alice");
    let b = h.add("bob");
    let c = h.add("carol");
    for id in [a, b, c] {
        h.status(id, Status::Ready).unwrap();
    }
    assert_eq!(h.st.pool().len(), 0, "nobody enters the pool unadmitted");
    assert_eq!(h.st.lobby().count(), 3);
    assert_eq!(peer_of(&h.st, a).unwrap(), None);
    h.take();
    admit(&mut h.cx(), a).unwrap();
    assert!(told(&h.take(), a, &ServerEvent::Admitted));
    assert_eq!(h.st.pool().len(), 1);
    admit(&mut h.cx(), b).unwrap();
    assert!(paired(&h.take(), a));
    assert_eq!(peer_of(&h.st, b).unwrap().unwrap().peer.name, "alice");
    assert_eq!(h.st.lobby().collect::<Vec<_>>(), vec![c]);
    // Admitting twice is a no-op; admission sticks after hanging up.
    admit(&mut h.cx(), a).unwrap();
    assert!(h.take().is_empty());
    h.status(a, Status::Ready).unwrap();
    assert_eq!(h.st.pool().len(), 1);
    let admitted = admit_all(&mut h.cx());
    assert_eq!(admitted, vec![c]);
    assert!(h.st.user(c).unwrap().pair.is_some());
}

#[test]
fn reports_target_the_current_or_last_partner() {
    let mut h = Harness::new(1);
    let a = h.add("alice");
    let b = h.add("bob");
    assert_eq!(report_target(&h.st, a), None);
    h.status(a, Status::Ready).unwrap();
    h.status(b, Status::Ready).unwrap();
    assert_eq!(report_target(&h.st, a).as_deref(), Some("bob"));
    users::remove(&mut h.cx(), b, LeaveReason::LoggedOut, None).unwrap();
    assert_eq!(report_target(&h.st, a).as_deref(), Some("bob"));
}

fn pair_of_two(h: &mut Harness) -> (UserId, UserId) {
    let a = h.add("alice");
    let b = h.add("bob");
    h.status(a, Status::Ready).unwrap();
    h.status(b, Status::Ready).unwrap();
    let callee = if h.st.user(a).unwrap().pair.as_ref().unwrap().role == Role::Callee {
        a
    } else {
        b
    };
    let caller = if callee == a { b } else { a };
    (caller, callee)
}

#[test]
fn an_unanswered_pair_blames_the_callee_that_never_got_ready() {
    let mut h = Harness::new(3);
    let t = h.t0.unix_ms;
    let (caller, callee) = pair_of_two(&mut h);
    let limit = Duration::from_secs(10);
    assert!(unanswered(&h.st, t + 9_000, limit).is_empty());
    assert_eq!(unanswered(&h.st, t + 11_000, limit), vec![callee]);
    h.take();
    drop_unanswered(&mut h.cx(), callee);
    let n = h.take();
    for who in [caller, callee] {
        assert!(told(
            &n,
            who,
            &ServerEvent::PeerLeft {
                reason: LeaveReason::NoAnswer
            }
        ));
        assert_eq!(h.st.user(who).unwrap().status, Status::Busy);
        assert!(h.st.user(who).unwrap().pair.is_none());
    }
    assert_eq!(h.st.pool().len(), 0);
    assert!(unanswered(&h.st, t + 60_000, limit).is_empty());
}

#[test]
fn an_unanswered_pair_blames_the_caller_once_the_callee_is_ready() {
    let mut h = Harness::new(4);
    let t = h.t0.unix_ms;
    let (caller, callee) = pair_of_two(&mut h);
    h.status(callee, Status::ReadyToTalk).unwrap();
    let later = t + 11_000;
    assert_eq!(
        unanswered(&h.st, later, Duration::from_secs(10)),
        vec![caller]
    );
    // Once both are ready to talk the call has started: no deadline.
    h.status(caller, Status::ReadyToTalk).unwrap();
    assert!(unanswered(&h.st, later, Duration::from_secs(10)).is_empty());
}

#[test]
fn a_user_whose_stream_closed_or_went_quiet_is_not_handed_out() {
    let mut h = Harness::new(5);
    let t = h.t0.unix_ms;
    let ghost = h.add("ghost");
    let quiet = h.add("quiet");
    let newcomer = h.add("newcomer");
    for id in [ghost, quiet] {
        stream_opened(&mut h.st, id, "n1", t);
        h.status_at(h.at(0), id, Status::Ready).unwrap();
    }
    // The two were paired with each other at once: end that pair.
    h.status_at(h.at(0), ghost, Status::Busy).unwrap();
    h.status_at(h.at(0), quiet, Status::Busy).unwrap();
    h.status_at(h.at(0), ghost, Status::Ready).unwrap();
    stream_closed(&mut h.st, ghost, t + 1_000, t + 1_000);
    h.status_at(h.at(1), quiet, Status::Ready).unwrap();
    assert_eq!(
        h.st.user(quiet).unwrap().status,
        Status::Ready,
        "ghost skipped"
    );
    // quiet's last pong was at t; at t+5 it is past the 3 s window.
    h.status_at(h.at(5), newcomer, Status::Ready).unwrap();
    assert_eq!(h.st.user(newcomer).unwrap().status, Status::Ready);
    assert_eq!(h.st.pool().len(), 3);
    // quiet answers pings again: the next rematch pairs it with the
    // newcomer, never with the ghost.
    touch(&mut h.st, quiet, t + 6_000).unwrap();
    h.take();
    rematch(&mut h.cx_at(h.at(6)));
    let n = h.take();
    assert_eq!(
        h.st.user(quiet).unwrap().pair.as_ref().unwrap().peer,
        newcomer
    );
    assert!(n
        .iter()
        .all(|x| !matches!(x, Delivery::Event(u, _) if *u == ghost)));
    assert_eq!(h.st.user(ghost).unwrap().status, Status::Ready);
    // Nothing else to pair: rematch is then a no-op.
    rematch(&mut h.cx_at(h.at(7)));
    assert!(h.take().is_empty());
}
