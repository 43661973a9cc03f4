//! The flood guard in the sans-IO core, in simulated time: a blocked
//! source's datagrams never reach the parser (the parser's counters stop,
//! the guard's go on), unproven sources get a few answers and then none
//! (no reflection, no retransmission later), trusted networks and proven
//! sources are answered, and an operator's unblock lifts a block.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_pbx::core::{Account, BlockReason, Config, Event, Limit, Net, Pbx};
use myturn_sip::digest::{self, Challenge};
use myturn_sip::msg;
use rand::rngs::StdRng;
use rand::SeedableRng;

const PBX: &str = "192.0.2.10:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn pbx(cfg: Config, now: Instant) -> Pbx {
    let mut p = Pbx::new(cfg, Box::new(StdRng::seed_from_u64(7)), now);
    p.set_accounts([Account {
        username: "alice".into(),
        extension: "111000".into(),
        password: "pw-alice-123".into(),
    }]);
    p
}

fn options(from: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{PBX} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKo{n}\r\nFrom: <sip:x@{from}>;tag=1\r\n\
         To: <sip:{PBX}>\r\nCall-ID: o{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn invite(from: SocketAddr, n: u32) -> String {
    format!(
        "INVITE sip:111000@{PBX} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKi{n}\r\nFrom: <sip:eve@{from}>;tag=1\r\n\
         To: <sip:111000@{PBX}>\r\nCall-ID: i{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:eve@{from}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn register(from: SocketAddr, n: u32, auth: Option<String>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{PBX} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKr{n}\r\nFrom: <sip:alice@{PBX}>;tag=r{n}\r\n\
         To: <sip:alice@{PBX}>\r\nCall-ID: r{n}\r\nCSeq: {n} REGISTER\r\nContact: <sip:alice@{from}>\r\nExpires: 300\r\n\
         Max-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// Answers `to` got (status codes), draining the PBX's output.
fn answers(p: &mut Pbx, to: SocketAddr) -> Vec<u16> {
    std::iter::from_fn(|| p.poll_transmit())
        .filter(|t| t.dest == to)
        .map(|t| msg::parse(&t.payload).unwrap().status().unwrap())
        .collect()
}

/// alice registers from `from` (challenge, then credentials): the 200's
/// status, or what came instead.
fn register_alice(p: &mut Pbx, now: Instant, from: SocketAddr, n: u32) -> Option<u16> {
    p.handle_datagram(now, from, register(from, n, None).as_bytes());
    let ch = std::iter::from_fn(|| p.poll_transmit()).find(|t| t.dest == from)?;
    let ch = msg::parse(&ch.payload).unwrap();
    let c = Challenge::choose(ch.headers("WWW-Authenticate")).unwrap();
    let cr = digest::respond(
        &c,
        "alice",
        "pw-alice-123",
        "REGISTER",
        &format!("sip:{PBX}"),
        "cn",
        1,
    );
    let req = register(from, n + 1, Some(cr.to_header_value()));
    p.handle_datagram(now, from, req.as_bytes());
    answers(p, from).first().copied()
}

#[test]
fn a_blocked_sources_datagrams_never_reach_the_parser() {
    let now = Instant::now();
    let mut cfg = Config::new(addr(PBX));
    cfg.flood.requests = Limit::new(50, 200);
    let mut p = pbx(cfg, now);
    let eve = addr("203.0.113.66:5060");
    let junk = b"\x00\x01not SIP at all\r\n\r\n";
    for _ in 0..1_000 {
        p.handle_datagram(now, eve, junk);
    }
    let st = p.stats();
    // The parser saw the burst, and nothing after the block.
    assert_eq!(st.dropped + st.rejected, 200, "{st:?}");
    assert_eq!(st.blocked_packets, 800);
    assert_eq!(st.blocked_bytes, 800 * junk.len() as u64);
    assert_eq!(st.flood_blocks, 1);
    assert!(std::iter::from_fn(|| p.poll_event()).any(|e| e == Event::Flooding { ip: eve.ip() }));
    let b = p.blocked(now);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].ip, b[0].reason), (eve.ip(), BlockReason::Flood));
    assert_eq!(b[0].packets, 800);
    // Well-formed requests from it are not read either.
    p.handle_datagram(now, eve, options(eve, 1).as_bytes());
    assert!(answers(&mut p, eve).is_empty());
    assert_eq!(p.stats().dropped + p.stats().rejected, 200);
    // Someone else registers meanwhile.
    assert_eq!(
        register_alice(&mut p, now, addr("198.51.100.1:5060"), 1),
        Some(200)
    );
    // The operator lifts the block: heard again at once.
    assert!(p.unblock(now, eve.ip()));
    p.handle_datagram(now, eve, options(eve, 2).as_bytes());
    assert_eq!(answers(&mut p, eve), vec![200]);
}

#[test]
fn unproven_sources_get_a_few_answers_and_never_a_retransmission() {
    let now = Instant::now();
    let cfg = Config::new(addr(PBX));
    let burst = cfg.flood.answers.burst as usize;
    let mut p = pbx(cfg, now);
    // Forged-source INVITEs and REGISTERs, within the request rate.
    let victim = addr("192.0.2.99:5060");
    let mut got = 0;
    for n in 0..100 {
        let req = if n % 2 == 0 {
            invite(victim, n)
        } else {
            register(victim, n, None)
        };
        p.handle_datagram(now, victim, req.as_bytes());
        got += answers(&mut p, victim).len();
    }
    assert_eq!(got, burst, "answers stop at the budget");
    assert_eq!(p.stats().flood_blocks, 0, "within the request rate");
    assert!(p.stats().unanswered >= 80, "{:?}", p.stats());
    // Withheld answers leave no transaction behind to send them later.
    let mut t = now;
    for _ in 0..40 {
        t += Duration::from_secs(1);
        p.handle_timeout(t);
        let resent = answers(&mut p, victim);
        assert!(resent.iter().all(|c| *c == 407 || *c == 100), "{resent:?}");
    }
    // A source that proved a password is answered beyond the budget.
    let alice = addr("198.51.100.7:5060");
    for n in 0..(burst as u32 * 3) {
        assert_eq!(register_alice(&mut p, t, alice, 10 * n), Some(200), "{n}");
    }
}

#[test]
fn trusted_networks_are_neither_limited_nor_silenced() {
    let now = Instant::now();
    let mut cfg = Config::new(addr(PBX));
    cfg.flood.trusted = vec![Net::new("198.51.100.0".parse().unwrap(), 24)];
    let mut p = pbx(cfg, now);
    let trunk = addr("198.51.100.200:5060");
    let stranger = addr("203.0.113.1:5060");
    let (mut t_ok, mut s_ok) = (0, 0);
    for n in 0..1_000 {
        p.handle_datagram(now, trunk, options(trunk, n).as_bytes());
        p.handle_datagram(now, stranger, options(stranger, n).as_bytes());
        for t in std::iter::from_fn(|| p.poll_transmit()) {
            if t.dest == trunk {
                t_ok += 1;
            } else {
                s_ok += 1;
            }
        }
    }
    assert_eq!(t_ok, 1_000, "the trusted source: every answer");
    assert_eq!(s_ok, 20, "the stranger: the answer burst");
    assert!(p.blocked(now).iter().all(|b| b.ip == stranger.ip()));
    assert_eq!(p.blocked_count(now), 1);
}
