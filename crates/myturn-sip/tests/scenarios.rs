//! Sans-IO scenarios: two user agents and a scripted registrar/proxy,
//! stepped through simulated time, with loss and reordering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use myturn_sip::digest::{Algorithm, Credentials};
use myturn_sip::msg;
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{CallHandle, EndedBy, Event};
use myturn_testkit::sip::{self, first_incoming as incoming};

fn offer(port: u16) -> String {
    sip::offer(addr(&format!("10.0.0.9:{port}")), "key", 1)
}

fn count<F: Fn(&Event) -> bool>(events: &[Event], f: F) -> usize {
    events.iter().filter(|e| f(e)).count()
}

#[test]
fn register_challenge_then_success_md5_and_sha256() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let mut sim = Sim::new(1);
        sim.proxy.algorithm = alg;
        sim.a.register(sim.now);
        sim.run_for(Duration::from_secs(2));
        assert!(sim.a.is_registered(), "{alg:?}: {:?}", sim.events_a);
        assert!(matches!(
            sim.events_a.as_slice(),
            [Event::Registered { expires, .. }] if *expires == Duration::from_secs(60)
        ));
        let regs = sim.sent_by(A, "REGISTER");
        assert_eq!(regs.len(), 2, "one challenged, one authorised");
        let (m1, m2) = (
            msg::parse(&regs[0].data).unwrap(),
            msg::parse(&regs[1].data).unwrap(),
        );
        let b1 = m1.top_via().unwrap().branch().unwrap().to_owned();
        let b2 = m2.top_via().unwrap().branch().unwrap().to_owned();
        assert_ne!(b1, b2, "the REGISTER after a 401 needs a fresh branch");
        assert!(b1.starts_with("z9hG4bK") && b2.starts_with("z9hG4bK"));
        assert_eq!(m2.cseq(), m1.cseq() + 1);
        assert_eq!(m1.call_id(), m2.call_id());
        let creds = Credentials::parse(m2.header("Authorization").unwrap()).unwrap();
        assert_eq!(creds.algorithm, alg);
        assert_eq!(creds.qop.as_ref().unwrap().1, 1, "nc=00000001");
        assert_eq!(sim.proxy.bindings.get("111000"), Some(&addr(A)));
    }
}

#[test]
fn wrong_password_fails_after_one_retry() {
    let mut sim = Sim::new(2);
    sim.proxy.passwords.insert("111000".into(), "other".into());
    sim.a.register(sim.now);
    sim.run_for(Duration::from_secs(2));
    assert!(!sim.a.is_registered());
    assert!(matches!(
        sim.events_a.as_slice(),
        [Event::RegistrationFailed { code: 401, .. }]
    ));
    assert_eq!(sim.sent_by(A, "REGISTER").len(), 2, "no endless retry loop");
}

#[test]
fn registration_refreshes_before_expiry_and_unregisters() {
    let mut sim = Sim::new(3);
    sim.a.register(sim.now);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.sent_by(A, "REGISTER").len(), 2);
    // Granted 60 s: the refresh goes out at 30 s, well before expiry.
    sim.run_for(Duration::from_secs(27));
    assert_eq!(sim.sent_by(A, "REGISTER").len(), 2);
    sim.run_for(Duration::from_secs(5));
    let regs = sim.sent_by(A, "REGISTER");
    assert!(regs.len() >= 3, "refreshed");
    let refresh = msg::parse(&regs[2].data).unwrap();
    let first = msg::parse(&regs[0].data).unwrap();
    assert_eq!(
        refresh.call_id(),
        first.call_id(),
        "same registration Call-ID"
    );
    assert!(refresh.cseq() > first.cseq());
    assert_eq!(
        count(&sim.events_a, |e| matches!(e, Event::Registered { .. })),
        2
    );
    assert!(sim.a.is_registered());

    sim.a.unregister(sim.now);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.events_a.last(), Some(&Event::Unregistered));
    let last = msg::parse(&sim.sent_by(A, "REGISTER").last().unwrap().data).unwrap();
    assert_eq!(last.expires(), Some(0));
    assert!(!sim.proxy.bindings.contains_key("111000"));
}

#[test]
fn interval_too_brief_is_retried_with_min_expires() {
    let mut sim = Sim::new(4);
    sim.proxy.min_expires = Some(120);
    sim.proxy.expires_granted = 3600;
    sim.a.register(sim.now);
    sim.run_for(Duration::from_secs(2));
    assert!(matches!(
        sim.events_a.as_slice(),
        [Event::Registered { expires, .. }] if *expires == Duration::from_secs(120)
    ));
    let last = msg::parse(&sim.sent_by(A, "REGISTER").last().unwrap().data).unwrap();
    assert_eq!(last.expires(), Some(120));
}

#[test]
fn dead_registrar_times_out_with_timer_f() {
    let mut sim = Sim::new(5);
    sim.proxy.dead = true;
    sim.a.register(sim.now);
    sim.run_for(Duration::from_secs(31));
    assert!(sim.events_a.is_empty(), "still retrying before 64·T1");
    sim.run_for(Duration::from_secs(2));
    assert!(matches!(
        sim.events_a.as_slice(),
        [Event::RegistrationFailed { code: 408, .. }]
    ));
    // Timer E: 500 ms doubling to T2 = 4 s over 32 s gives 11 sends.
    assert_eq!(sim.sent_by(A, "REGISTER").len(), 11);
}

/// A calls B through the proxy; B answers; returns both call ids.
fn establish(sim: &mut Sim) -> (CallHandle, CallHandle) {
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run_for(Duration::from_secs(3));
    let cb = incoming(&sim.events_b).expect("B is called");
    sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
    sim.run_for(Duration::from_secs(10));
    assert!(
        sim.events_a
            .iter()
            .any(|e| matches!(e, Event::Answered { call, .. } if *call == ca)),
        "A: {:?}",
        sim.events_a
    );
    assert!(
        sim.events_b
            .iter()
            .any(|e| matches!(e, Event::Confirmed { call, .. } if *call == cb)),
        "B: {:?}",
        sim.events_b
    );
    (ca, cb)
}

#[test]
fn call_and_bye_from_the_caller() {
    let mut sim = Sim::new(6);
    sim.register_both();
    let (ca, cb) = establish(&mut sim);
    // The answer carries B's SDP and key; ringing came before.
    let ans = sim.events_a.iter().find_map(|e| match e {
        Event::Answered { answer, .. } => answer.clone(),
        _ => None,
    });
    assert_eq!(ans.unwrap().media.port(), 5000);
    assert!(sim
        .events_a
        .iter()
        .any(|e| matches!(e, Event::Ringing { .. })));
    // In-dialog requests follow the Record-Route through the proxy.
    sim.a.hangup(sim.now, ca).unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(sim.events_a.contains(&Event::CallEnded {
        call: ca,
        by: EndedBy::Local
    }));
    assert!(sim.events_b.contains(&Event::CallEnded {
        call: cb,
        by: EndedBy::Remote
    }));
    let bye = sim.sent_by(A, "BYE ");
    assert_eq!(bye.len(), 1);
    assert_eq!(bye[0].to, addr(PROXY), "BYE follows the route set");
    assert!(bye[0].text().contains(&format!("Route: <sip:{PROXY};lr>")));
    assert!(sim.proxy.seen.iter().any(|l| l.starts_with("ACK ")));
}

#[test]
fn bye_from_the_callee() {
    let mut sim = Sim::new(7);
    sim.register_both();
    let (ca, cb) = establish(&mut sim);
    sim.b.hangup(sim.now, cb).unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(sim.events_b.contains(&Event::CallEnded {
        call: cb,
        by: EndedBy::Local
    }));
    assert!(sim.events_a.contains(&Event::CallEnded {
        call: ca,
        by: EndedBy::Remote
    }));
    // B's BYE goes to the proxy too (the UAS route set is Record-Route).
    assert_eq!(sim.sent_by(B, "BYE ")[0].to, addr(PROXY));
}

#[test]
fn invite_is_retransmitted_under_loss() {
    let mut sim = Sim::new(8);
    sim.register_both();
    // Lose the first two INVITEs A sends.
    let mut lost = 0;
    sim.drop_rule = Some(Box::new(move |p| {
        if p.from == addr(A) && p.data.starts_with(b"INVITE ") && lost < 2 {
            lost += 1;
            return true;
        }
        false
    }));
    let t0 = sim.now;
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run_for(Duration::from_secs(5));
    let cb = incoming(&sim.events_b).expect("the third INVITE got through");
    let invites = sim.sent_by(A, "INVITE ");
    assert_eq!(invites.len(), 3);
    // Timer A: 500 ms, then 1 s.
    assert_eq!(invites[1].at.duration_since(t0).as_millis() / 100, 5);
    assert_eq!(invites[2].at.duration_since(t0).as_millis() / 100, 15);
    sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        count(&sim.events_b, |e| matches!(e, Event::IncomingCall { .. })),
        1
    );
    assert!(sim
        .events_a
        .iter()
        .any(|e| matches!(e, Event::Answered { call, .. } if *call == ca)));
}

#[test]
fn calls_survive_random_loss_and_reordering() {
    for seed in 0..20 {
        let mut sim = Sim::new(100 + seed);
        sim.register_both();
        sim.loss = 0.2;
        sim.max_delay_ms = 80;
        let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
        sim.run_for(Duration::from_secs(8));
        let Some(cb) = incoming(&sim.events_b) else {
            // Possible only if every retransmission in 8 s was lost.
            panic!("seed {seed}: B never saw the INVITE");
        };
        sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
        sim.run_for(Duration::from_secs(20));
        assert_eq!(
            count(&sim.events_a, |e| matches!(e, Event::Answered { .. })),
            1,
            "seed {seed}: {:?}",
            sim.events_a
        );
        assert_eq!(
            count(&sim.events_b, |e| matches!(e, Event::IncomingCall { .. })),
            1
        );
        sim.a.hangup(sim.now, ca).unwrap();
        sim.run_for(Duration::from_secs(40));
        assert!(
            sim.events_a.contains(&Event::CallEnded {
                call: ca,
                by: EndedBy::Local
            }),
            "seed {seed}: {:?}",
            sim.events_a
        );
        // B learns of the end by BYE, or by nothing at all if every BYE was
        // lost (then A's timer F ended it locally); never twice.
        assert!(count(&sim.events_b, |e| matches!(e, Event::CallEnded { .. })) <= 1);
    }
}

#[test]
fn cancel_while_ringing() {
    let mut sim = Sim::new(9);
    sim.register_both();
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run_for(Duration::from_secs(1));
    let cb = incoming(&sim.events_b).unwrap();
    sim.a.hangup(sim.now, ca).unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(sim.events_a.contains(&Event::CallEnded {
        call: ca,
        by: EndedBy::Local
    }));
    assert!(sim.events_b.contains(&Event::CallEnded {
        call: cb,
        by: EndedBy::Remote
    }));
    // B answered 487 to the INVITE and 200 to the CANCEL; A acknowledged 487.
    assert!(!sim.sent_by(B, "SIP/2.0 487").is_empty());
    assert!(sim.sent_by(A, "ACK ").len() == 1);
    let cancel = msg::parse(&sim.sent_by(A, "CANCEL ")[0].data).unwrap();
    let invite = msg::parse(&sim.sent_by(A, "INVITE ")[0].data).unwrap();
    assert_eq!(
        cancel.top_via(),
        invite.top_via(),
        "CANCEL reuses the INVITE's Via"
    );
    assert_eq!(cancel.cseq(), invite.cseq());
    assert!(
        sim.b.answer(sim.now, cb, &offer(5000)).is_err(),
        "too late to answer"
    );
}

#[test]
fn hangup_before_any_provisional_waits_to_cancel() {
    let mut sim = Sim::new(10);
    sim.register_both();
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.a.hangup(sim.now, ca).unwrap();
    assert!(sim.sent_by(A, "CANCEL ").is_empty());
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.sent_by(A, "CANCEL ").len(), 1, "sent once the 180 came");
    assert!(sim.events_a.contains(&Event::CallEnded {
        call: ca,
        by: EndedBy::Local
    }));
    assert!(!sim
        .events_a
        .iter()
        .any(|e| matches!(e, Event::Answered { .. })));
}

#[test]
fn cancel_racing_with_200_ends_with_bye() {
    let mut sim = Sim::new(11);
    sim.register_both();
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run_for(Duration::from_secs(1));
    let cb = incoming(&sim.events_b).unwrap();
    // Both at the same instant: B's 200 and A's CANCEL cross on the wire.
    sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
    sim.a.hangup(sim.now, ca).unwrap();
    sim.run_for(Duration::from_secs(5));
    // The CANCEL found no ringing call (481); A acknowledged the 200 and
    // hung up with BYE; both sides end exactly once, no Answered event.
    assert_eq!(sim.sent_by(A, "CANCEL ").len(), 1);
    assert_eq!(sim.sent_by(A, "BYE ").len(), 1);
    assert!(!sim
        .events_a
        .iter()
        .any(|e| matches!(e, Event::Answered { .. })));
    assert_eq!(
        count(&sim.events_a, |e| matches!(e, Event::CallEnded { .. })),
        1
    );
    assert_eq!(
        count(&sim.events_b, |e| matches!(e, Event::CallEnded { .. })),
        1
    );
    assert!(sim.events_b.contains(&Event::CallEnded {
        call: cb,
        by: EndedBy::Remote
    }));
}

#[test]
fn busy_and_unknown_extension_fail_with_clear_codes() {
    let mut sim = Sim::new(12);
    sim.register_both();
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run_for(Duration::from_secs(1));
    let cb = incoming(&sim.events_b).unwrap();
    sim.b.reject(sim.now, cb, 486, "Busy Here").unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(sim
        .events_a
        .iter()
        .any(|e| matches!(e, Event::CallFailed { call, code: 486, .. } if *call == ca)));
    let c2 = sim.a.invite(sim.now, "999999", &offer(4000)).unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(sim
        .events_a
        .iter()
        .any(|e| matches!(e, Event::CallFailed { call, code: 404, .. } if *call == c2)));
    // Each failure was acknowledged inside its transaction.
    assert_eq!(sim.sent_by(A, "ACK ").len(), 2);
}

#[test]
fn unanswered_invite_times_out_with_408() {
    let mut sim = Sim::new(13);
    sim.register_both();
    sim.proxy.dead = true;
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run_for(Duration::from_secs(33));
    assert!(sim
        .events_a
        .iter()
        .any(|e| matches!(e, Event::CallFailed { call, code: 408, .. } if *call == ca)));
    // Timer A doubles: sends at 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(sim.sent_by(A, "INVITE ").len(), 7);
}

#[test]
fn lost_ack_makes_the_callee_retransmit_200() {
    let mut sim = Sim::new(14);
    sim.register_both();
    let mut dropped = 0;
    sim.drop_rule = Some(Box::new(move |p| {
        if p.from == addr(A) && p.data.starts_with(b"ACK ") && dropped < 1 {
            dropped += 1;
            return true;
        }
        false
    }));
    let (_ca, cb) = establish(&mut sim);
    assert!(
        sim.sent_by(B, "SIP/2.0 200 OK").len() >= 2,
        "200 retransmitted until ACK"
    );
    assert!(
        sim.sent_by(A, "ACK ").len() >= 2,
        "A re-acknowledges each 2xx"
    );
    assert_eq!(
        count(&sim.events_b, |e| matches!(e, Event::Confirmed { .. })),
        1
    );
    let _ = cb;
}

#[test]
fn reinvite_and_options_are_answered() {
    let mut sim = Sim::new(15);
    sim.register_both();
    let (_ca, cb) = establish(&mut sim);
    // Forge a re-INVITE from A's dialog state as Asterisk would send one.
    let invite = msg::parse(&sim.sent_by(A, "INVITE ")[0].data).unwrap();
    let ok = sim
        .wire
        .iter()
        .find(|p| p.from == addr(B) && p.data.starts_with(b"SIP/2.0 200 OK"))
        .unwrap();
    let ok = msg::parse(&ok.data).unwrap();
    let body = offer(4100);
    let re = format!(
        "INVITE sip:111001@{B} SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKre1\r\nFrom: {}\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: {} INVITE\r\nContact: <sip:111000@{A}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        invite.header("From").unwrap(),
        ok.header("To").unwrap(),
        invite.call_id(),
        invite.cseq() + 10,
        body.len()
    );
    sim.b.handle_datagram(sim.now, addr(A), re.as_bytes());
    let t = sim.b.poll_transmit().unwrap();
    let resp = msg::parse(&t.payload).unwrap();
    assert_eq!(resp.status(), Some(200));
    assert_eq!(
        Sdp::parse(resp.body()).unwrap().media.port(),
        5000,
        "our SDP again"
    );
    let ev: Vec<Event> = std::iter::from_fn(|| sim.b.poll_event()).collect();
    assert!(ev.iter().any(|e| matches!(e, Event::RemoteMediaChanged { call, sdp } if *call == cb && sdp.media.port() == 4100)));

    let options = format!(
        "OPTIONS sip:111001@{B} SIP/2.0\r\nVia: SIP/2.0/UDP {PROXY};branch=z9hG4bKq1\r\nFrom: <sip:asterisk@{PROXY}>;tag=q\r\n\
         To: <sip:111001@{B}>\r\nCall-ID: qualify1\r\nCSeq: 102 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sim.b
        .handle_datagram(sim.now, addr(PROXY), options.as_bytes());
    let t = sim.b.poll_transmit().unwrap();
    let resp = msg::parse(&t.payload).unwrap();
    assert_eq!(resp.status(), Some(200));
    assert!(resp.header("Allow").unwrap().contains("INVITE"));
    // A retransmitted OPTIONS is absorbed by the server transaction: the
    // same response again, no new processing.
    sim.b
        .handle_datagram(sim.now, addr(PROXY), options.as_bytes());
    assert_eq!(sim.b.poll_transmit().unwrap().payload, t.payload);
    assert_eq!(sim.b.stats().absorbed, 1);
}

#[test]
fn invite_retransmitted_after_the_200_is_absorbed() {
    let mut sim = Sim::new(16);
    sim.register_both();
    // B's 180s and its first 200 are lost, so A keeps retransmitting the
    // INVITE after B has answered (RFC 6026's Accepted state absorbs it).
    let mut oks = 0;
    sim.drop_rule = Some(Box::new(move |p| {
        if p.from == addr(B) && p.data.starts_with(b"SIP/2.0 180") {
            return true;
        }
        if p.from == addr(B) && p.data.starts_with(b"SIP/2.0 200") && oks < 1 {
            oks += 1;
            return true;
        }
        false
    }));
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run_for(Duration::from_millis(100));
    let cb = incoming(&sim.events_b).unwrap();
    sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
    sim.run_for(Duration::from_secs(5));
    assert!(sim.sent_by(A, "INVITE ").len() >= 2, "A retransmitted");
    assert!(
        sim.sent_by(B, "SIP/2.0 482").is_empty(),
        "not mistaken for a loop"
    );
    assert_eq!(
        count(&sim.events_b, |e| matches!(e, Event::IncomingCall { .. })),
        1
    );
    assert!(sim
        .events_a
        .iter()
        .any(|e| matches!(e, Event::Answered { call, .. } if *call == ca)));
    assert_eq!(
        count(&sim.events_b, |e| matches!(e, Event::Confirmed { .. })),
        1
    );
}
