//! `cargo bench -p myturn-sip --bench sip`
//!
//! 1. Parse time per message: `myturn_sip::msg::parse` (normaliser +
//!    rsip + validation) against `rsip::SipMessage::try_from` alone, in the
//!    same run, on an INVITE with SDP, a 200 OK for REGISTER, and RFC 4475's
//!    `wsinv` (folding, compact forms; rsip alone rejects it, so its time is
//!    that of failing).
//! 2. Transactions per second of the sans-IO core: complete REGISTER
//!    transactions (request built, 200 parsed and matched, event emitted)
//!    and complete calls (INVITE → 180 → 200 → ACK … BYE → 200, on two
//!    agents wired back to back, every message parsed by the receiver).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use myturn_sip::msg;
use myturn_sip::ua::{Config, Event, UserAgent};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Median ns per call of 11 rounds (myturn-testkit's timing).
fn measure(f: impl FnMut(), iters: u32) -> f64 {
    myturn_testkit::bench::median_ns(f, iters, 11)
}

const INVITE: &str = "INVITE sip:111001@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:45524;rport;branch=z9hG4bKGdE91mkxzp4YXSxi\r\n\
From: <sip:111000@127.0.0.1>;tag=PnEPqBa8fpgQ\r\n\
To: <sip:111001@127.0.0.1>\r\n\
Call-ID: JhnuTi36vMuT3IfcekQ4@myturn\r\n\
CSeq: 3164 INVITE\r\n\
Contact: <sip:111000@127.0.0.1:45524>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO\r\n\
Content-Type: application/sdp\r\n\
Max-Forwards: 70\r\n\
User-Agent: myTurn/0.1.0\r\n\
Content-Length: 183\r\n\r\n\
v=0\r\no=myturn 42 1 IN IP4 127.0.0.1\r\ns=myTurn\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 L16/8000\r\na=ptime:20\r\na=sendrecv\r\n\
a=myturn-key:sha-256 ZmluZ2VycHJpbnQ\r\n";

const OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;rport=5070;received=127.0.0.1;branch=z9hG4bKabcdefghij\r\n\
From: <sip:111000@127.0.0.1>;tag=abcdef\r\n\
To: <sip:111000@127.0.0.1>;tag=kam1\r\n\
Call-ID: regcallid@myturn\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:111000@127.0.0.1:5070>;expires=120\r\n\
Server: kamailio (5.6.3 (x86_64/linux))\r\n\
Content-Length: 0\r\n\r\n";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn agent(local: &str, user: &str) -> UserAgent {
    let mut cfg = Config::new(a(local), a("127.0.0.1:5060"), user, "pw");
    cfg.domain = "127.0.0.1".into();
    UserAgent::new(cfg, Box::new(StdRng::seed_from_u64(7)))
}

/// Complete REGISTER transactions per second on one agent: the registrar's
/// answer is made from the request by string edits (cheap next to the
/// agent's own work).
fn register_tps() -> f64 {
    let mut ua = agent("127.0.0.1:5070", "111000");
    let mut now = Instant::now();
    let n = 20_000u32;
    let t = Instant::now();
    for _ in 0..n {
        now += std::time::Duration::from_millis(10);
        ua.handle_timeout(now);
        ua.register(now);
        let req = ua.poll_transmit().unwrap();
        let m = msg::parse(&req.payload).unwrap();
        let resp = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=r\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n\
             Contact: <sip:111000@127.0.0.1:5070>;expires=120\r\nContent-Length: 0\r\n\r\n",
            m.header("Via").unwrap(),
            m.header("From").unwrap(),
            m.header("To").unwrap(),
            m.call_id(),
            m.cseq()
        );
        ua.handle_datagram(now, a("127.0.0.1:5060"), resp.as_bytes());
        assert!(matches!(ua.poll_event(), Some(Event::Registered { .. })));
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

/// Complete calls per second between two agents wired back to back (each
/// call is 3 transactions: INVITE, ACK, BYE; 7 messages parsed).
fn call_tps() -> f64 {
    let mut x = agent("127.0.0.1:5070", "111000");
    let mut y = agent("127.0.0.1:5060", "111001");
    let mut now = Instant::now();
    let sdp = myturn_sip::sdp::Sdp::new(a("127.0.0.1:4000"), 8000, Some("k".into()), 1).render();
    let n = 5_000u32;
    let t = Instant::now();
    for _ in 0..n {
        // Simulated time moves 50 ms per call, so lingering transactions
        // (timers J, K, L) expire as in a steady state of 20 calls/s.
        now += std::time::Duration::from_millis(50);
        x.handle_timeout(now);
        y.handle_timeout(now);
        let c = x.invite(now, "111001", &sdp).unwrap();
        let mut incoming = None;
        let mut answered = false;
        let mut ended = 0;
        let mut hung_up = false;
        loop {
            let mut moved = false;
            while let Some(tx) = x.poll_transmit() {
                y.handle_datagram(now, a("127.0.0.1:5070"), &tx.payload);
                moved = true;
            }
            while let Some(tx) = y.poll_transmit() {
                x.handle_datagram(now, a("127.0.0.1:5060"), &tx.payload);
                moved = true;
            }
            while let Some(e) = y.poll_event() {
                match e {
                    Event::IncomingCall { call, .. } => incoming = Some(call),
                    Event::CallEnded { .. } => ended += 1,
                    _ => {}
                }
            }
            while let Some(e) = x.poll_event() {
                match e {
                    Event::Answered { .. } => answered = true,
                    Event::CallEnded { .. } => ended += 1,
                    _ => {}
                }
            }
            if let Some(ic) = incoming.take() {
                y.answer(now, ic, &sdp).unwrap();
                moved = true;
            }
            if answered && !hung_up {
                x.hangup(now, c).unwrap();
                hung_up = true;
                moved = true;
            }
            if ended == 2 || !moved {
                break;
            }
        }
        assert_eq!(ended, 2);
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

fn main() {
    println!("parse time per message (median ns):");
    let wsinv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/torture/rfc4475/wsinv.dat"
    ))
    .unwrap();
    for (name, bytes) in [
        ("INVITE + SDP (616 B)", INVITE.as_bytes()),
        ("200 OK REGISTER", OK.as_bytes()),
        ("RFC 4475 wsinv", &wsinv[..]),
    ] {
        let ours_ok = msg::parse(bytes).is_ok();
        let rsip_ok = rsip::SipMessage::try_from(bytes).is_ok();
        let ours = measure(|| drop(black_box(msg::parse(black_box(bytes)))), 20_000);
        let alone = measure(
            || drop(black_box(rsip::SipMessage::try_from(black_box(bytes)))),
            20_000,
        );
        println!(
            "  {name:22} myturn-sip {ours:8.0} ns (ok={ours_ok})   rsip alone {alone:8.0} ns (ok={rsip_ok})   ratio {:.2}",
            ours / alone
        );
    }
    let reg = register_tps();
    println!("REGISTER transactions/s (one agent, core only): {reg:.0}");
    let calls = call_tps();
    println!(
        "calls/s (INVITE+ACK+BYE, two agents back to back): {calls:.0}  = {:.0} transactions/s",
        calls * 3.0
    );
}
