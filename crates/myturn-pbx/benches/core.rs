//! `cargo bench -p myturn-pbx --bench core`
//!
//! The sans-IO core alone, no sockets: the REGISTER+auth pair (the
//! unauthenticated REGISTER and its 401, then the REGISTER with
//! credentials and its 200; the client's side precomputed, so only the
//! PBX's work is timed), and what a datagram from a blocked source costs
//! the flood guard. Deterministic enough for `valgrind --tool=callgrind`
//! (instruction counts): `PBX_CORE_PAIRS=2000` runs fewer pairs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Instant;

use myturn_pbx::core::{Account, Config, Limit, Pbx};
use myturn_sip::digest::{self, Algorithm, Challenge};
use myturn_sip::msg;

const PBX: &str = "127.0.0.1:5060";

fn register(src: SocketAddr, auth: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:{PBX} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-524287-1---a1b2c3d4\r\n\
         Max-Forwards: 70\r\nContact: <sip:bench@{src};rinstance=af01>\r\nTo: <sip:bench@{PBX}>\r\n\
         From: <sip:bench@{PBX}>;tag=2f1a9c\r\nCall-ID: 1-12345@{src}\r\nCSeq: 2 REGISTER\r\n\
         Expires: 300\r\nUser-Agent: bench\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn main() {
    let pairs: usize = std::env::var("PBX_CORE_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let now = Instant::now();
    let mut cfg = Config::new(PBX.parse().unwrap());
    cfg.algorithms = vec![Algorithm::Md5];
    cfg.flood.requests = Limit::new(1_000_000, 1_000_000);
    let rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let mut pbx = Pbx::new(cfg, Box::new(rng), now);
    pbx.set_accounts([Account {
        username: "bench".into(),
        extension: "111000".into(),
        password: "bench-Pw-2026".into(),
    }]);
    let src: SocketAddr = "127.0.0.2:5070".parse().unwrap();
    let plain = register(src, "");
    pbx.handle_datagram(now, src, &plain);
    let ch = pbx.poll_transmit().unwrap();
    let ch = msg::parse(&ch.payload).unwrap();
    let c = Challenge::choose(ch.headers("WWW-Authenticate")).unwrap();
    let cr = digest::respond(
        &c,
        "bench",
        "bench-Pw-2026",
        "REGISTER",
        &format!("sip:{PBX}"),
        "0a4f113b",
        1,
    );
    let authed = register(src, &format!("Authorization: {}\r\n", cr.to_header_value()));
    // The same instant throughout: the nonce stays fresh, the 401s alike.
    let t0 = Instant::now();
    for _ in 0..pairs {
        pbx.handle_datagram(now, src, &plain);
        let a = pbx.poll_transmit().unwrap();
        pbx.handle_datagram(now, src, &authed);
        let b = pbx.poll_transmit().unwrap();
        assert!(a.payload.starts_with(b"SIP/2.0 401") && b.payload.starts_with(b"SIP/2.0 200"));
        while pbx.poll_event().is_some() {}
    }
    let per = t0.elapsed().as_secs_f64() / pairs as f64;
    println!(
        "REGISTER+auth pair, core alone: {:.2} µs ({pairs} pairs)",
        per * 1e6
    );

    // A blocked source: its datagrams are counted and dropped unread.
    let eve: SocketAddr = "203.0.113.9:5060".parse().unwrap();
    let mut cfg = Config::new(PBX.parse().unwrap());
    cfg.flood.requests = Limit::new(10, 10);
    let mut pbx = Pbx::new(cfg, Box::new(rand::rngs::OsRng), now);
    for _ in 0..20 {
        pbx.handle_datagram(now, eve, &plain);
    }
    while pbx.poll_transmit().is_some() {}
    let n = pairs * 10;
    let before = pbx.stats().blocked_packets;
    let t0 = Instant::now();
    for i in 0..n {
        pbx.handle_datagram(now + std::time::Duration::from_nanos(i as u64), eve, &plain);
    }
    let per = t0.elapsed().as_secs_f64() / n as f64;
    assert_eq!(pbx.stats().blocked_packets - before, n as u64);
    assert!(pbx.poll_transmit().is_none());
    println!(
        "datagram from a blocked source, core alone: {:.1} ns ({n} datagrams)",
        per * 1e9
    );
}
