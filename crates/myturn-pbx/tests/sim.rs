//! The built-in PBX with two real myturn-sip user agents, stepped through
//! simulated time on a simulated network (loss optional).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_pbx::core::{Account, Config as PbxConfig, Event as PbxEvent, Pbx};
use myturn_pbx::media::{MediaCommand, MediaMode};
use myturn_pbx::ng;
use myturn_pbx::relay::Side;
use myturn_sip::digest::{self, Algorithm, Challenge};
use myturn_sip::msg;
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{CallHandle, Config, EndedBy, Event, UserAgent};
use myturn_testkit::sip::{self, first_incoming as incoming};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PBX: &str = "10.0.0.10:5060";
const A: &str = "10.0.0.1:5060";
const B: &str = "10.0.0.2:5060";
const EVE: &str = "10.0.0.66:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn accounts() -> Vec<Account> {
    vec![
        Account {
            username: "alice".into(),
            extension: "111000".into(),
            password: "pw-alice-123".into(),
        },
        Account {
            username: "bob".into(),
            extension: "111001".into(),
            password: "pw-bob-4567".into(),
        },
    ]
}

struct Wire {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

struct Sim {
    now: Instant,
    pbx: Pbx,
    a: UserAgent,
    b: UserAgent,
    flight: Vec<Wire>,
    log: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    ev_a: Vec<Event>,
    ev_b: Vec<Event>,
    ev_pbx: Vec<PbxEvent>,
    /// What the PBX told the relay's sockets, and sent to rtpengine.
    media: Vec<MediaCommand>,
    control: Vec<Vec<u8>>,
    /// Replies the PBX sent to the test's own raw socket address.
    to_eve: Vec<Vec<u8>>,
    loss: f64,
    rng: StdRng,
    /// Alice behind a NAT: her packets come from this address, and only
    /// packets to it reach her.
    nat_a: Option<SocketAddr>,
}

fn agent(local: &str, user: &str, pw: &str, seed: u64) -> UserAgent {
    let mut cfg = Config::new(addr(local), addr(PBX), user, pw);
    cfg.expires = 120;
    UserAgent::new(cfg, Box::new(StdRng::seed_from_u64(seed)))
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Self::with(seed, PbxConfig::new(addr(PBX)))
    }

    fn with(seed: u64, cfg: PbxConfig) -> Sim {
        let now = Instant::now();
        let mut pbx = Pbx::new(cfg, Box::new(StdRng::seed_from_u64(seed)), now);
        pbx.set_accounts(accounts());
        Sim {
            now,
            pbx,
            a: agent(A, "alice", "pw-alice-123", seed + 1),
            b: agent(B, "bob", "pw-bob-4567", seed + 2),
            flight: Vec::new(),
            log: Vec::new(),
            ev_a: Vec::new(),
            ev_b: Vec::new(),
            ev_pbx: Vec::new(),
            media: Vec::new(),
            control: Vec::new(),
            to_eve: Vec::new(),
            loss: 0.0,
            nat_a: None,
            // The network's own stream, unrelated to the PBX's and agents'.
            rng: StdRng::seed_from_u64(seed ^ 0x00de_adbe_ef00),
        }
    }

    fn put(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.log.push((from, to, data.clone()));
        if to == addr(EVE) {
            self.to_eve.push(data);
            return;
        }
        if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
            return;
        }
        let d = self.rng.gen_range(1..=20);
        self.flight.push(Wire {
            at: self.now + Duration::from_millis(d),
            from,
            to,
            data,
        });
    }

    fn flush(&mut self) {
        let a_src = self.nat_a.unwrap_or(addr(A));
        while let Some(t) = self.a.poll_transmit() {
            self.put(a_src, t.dest, t.payload);
        }
        while let Some(t) = self.b.poll_transmit() {
            self.put(addr(B), t.dest, t.payload);
        }
        while let Some(t) = self.pbx.poll_transmit() {
            self.put(addr(PBX), t.dest, t.payload);
        }
        self.ev_a.extend(std::iter::from_fn(|| self.a.poll_event()));
        self.ev_b.extend(std::iter::from_fn(|| self.b.poll_event()));
        self.ev_pbx
            .extend(std::iter::from_fn(|| self.pbx.poll_event()));
        self.media
            .extend(std::iter::from_fn(|| self.pbx.poll_media()));
        self.control
            .extend(std::iter::from_fn(|| self.pbx.poll_control()).map(|t| t.payload));
    }

    fn run(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.flush();
            let np = self.flight.iter().map(|w| w.at).min();
            let nt = [
                self.a.poll_timeout(),
                self.b.poll_timeout(),
                self.pbx.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = [np, nt].into_iter().flatten().min().filter(|n| *n <= until) else {
                self.now = until;
                self.a.handle_timeout(until);
                self.b.handle_timeout(until);
                self.pbx.handle_timeout(until);
                self.flush();
                return;
            };
            self.now = self.now.max(next);
            if np == Some(next) {
                let i = self.flight.iter().position(|w| w.at == next).unwrap();
                let w = self.flight.remove(i);
                if w.to == self.nat_a.unwrap_or(addr(A)) {
                    self.a.handle_datagram(self.now, w.from, &w.data);
                } else if w.to == addr(B) {
                    self.b.handle_datagram(self.now, w.from, &w.data);
                } else if w.to == addr(PBX) {
                    self.pbx.handle_datagram(self.now, w.from, &w.data);
                }
            } else {
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
                self.pbx.handle_timeout(self.now);
            }
        }
    }

    fn register_both(&mut self) {
        self.a.register(self.now);
        self.b.register(self.now);
        self.run(Duration::from_secs(2));
        assert!(self.a.is_registered(), "{:?}", self.ev_a);
        assert!(self.b.is_registered(), "{:?}", self.ev_b);
    }

    /// Sends raw bytes to the PBX from EVE and returns its reply.
    fn raw(&mut self, data: &str) -> Option<msg::Message> {
        let before = self.to_eve.len();
        self.pbx
            .handle_datagram(self.now, addr(EVE), data.as_bytes());
        self.flush();
        self.to_eve.get(before).map(|r| msg::parse(r).unwrap())
    }
}

fn offer(port: u16) -> String {
    sip::offer(addr(&format!("10.0.0.9:{port}")), "a2V5", 1)
}

fn register_text(user: &str, branch: &str, auth: Option<String>, expires: &str) -> String {
    let mut s = format!(
        "REGISTER sip:10.0.0.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {EVE};branch=z9hG4bK{branch}\r\n\
         From: <sip:{user}@10.0.0.10>;tag=e1\r\nTo: <sip:{user}@10.0.0.10>\r\nCall-ID: eve-{branch}\r\n\
         CSeq: 1 REGISTER\r\nContact: <sip:{user}@{EVE}>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n"
    );
    if let Some(a) = auth {
        s.push_str(&format!("Authorization: {a}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s
}

/// Answers the PBX's challenge in `resp` for `user`/`pw`.
fn answer_challenge(resp: &msg::Message, user: &str, pw: &str) -> String {
    let ch = Challenge::choose(resp.headers("WWW-Authenticate")).unwrap();
    digest::respond(&ch, user, pw, "REGISTER", "sip:10.0.0.10:5060", "cn0nce", 1).to_header_value()
}

#[test]
fn register_with_challenge_then_200_sha256_preferred() {
    let mut sim = Sim::new(1);
    sim.register_both();
    let bindings = sim.pbx.bindings();
    assert_eq!(bindings.len(), 2);
    assert_eq!(bindings[0].0, "alice");
    assert_eq!(bindings[0].2, addr(A));
    // The first REGISTER was challenged with SHA-256 then MD5, and alice
    // answered with SHA-256.
    let challenge = sim
        .log
        .iter()
        .find(|(f, t, d)| *f == addr(PBX) && *t == addr(A) && d.starts_with(b"SIP/2.0 401"))
        .unwrap();
    let m = msg::parse(&challenge.2).unwrap();
    let algs: Vec<Algorithm> = m
        .headers("WWW-Authenticate")
        .map(|v| Challenge::parse(v).unwrap().algorithm)
        .collect();
    assert_eq!(algs, vec![Algorithm::Sha256, Algorithm::Md5]);
    assert!(
        sim.log
            .iter()
            .any(|(f, _, d)| *f == addr(A)
                && String::from_utf8_lossy(d).contains("algorithm=SHA-256"))
    );
    assert!(
        matches!(&sim.ev_pbx[0], PbxEvent::Registered { username, expires: 120, .. } if username == "alice" || username == "bob")
    );
}

#[test]
fn unknown_user_gets_exactly_what_a_wrong_password_gets() {
    let mut sim = Sim::new(2);
    let c1 = sim.raw(&register_text("alice", "1", None, "120")).unwrap();
    let c2 = sim.raw(&register_text("nobody", "2", None, "120")).unwrap();
    // Answer both challenges with a wrong password.
    let wrong = sim
        .raw(&register_text(
            "alice",
            "3",
            Some(answer_challenge(&c1, "alice", "bad")),
            "120",
        ))
        .unwrap();
    let unknown = sim
        .raw(&register_text(
            "nobody",
            "4",
            Some(answer_challenge(&c2, "nobody", "bad")),
            "120",
        ))
        .unwrap();
    let shape = |m: &msg::Message| {
        let mut names: Vec<String> = String::from_utf8_lossy(&build_bytes(m))
            .lines()
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
            .collect();
        names.sort();
        (
            m.status(),
            m.reason().to_owned(),
            names,
            m.headers("WWW-Authenticate").count(),
        )
    };
    assert_eq!(shape(&wrong), shape(&unknown));
    assert_eq!(wrong.status(), Some(401));
    // Also the first challenges look the same.
    assert_eq!(shape(&c1), shape(&c2));
    assert_eq!(sim.pbx.stats().auth_failures, 2);
}

fn build_bytes(m: &msg::Message) -> Vec<u8> {
    myturn_sip::build::forward(m, "", &[], |h| Some(h.clone()))
}

#[test]
fn repeated_failures_block_the_source_ip() {
    let mut sim = Sim::new(3);
    for i in 0..5 {
        let c = sim
            .raw(&register_text("alice", &format!("c{i}"), None, "120"))
            .unwrap();
        let r = sim.raw(&register_text(
            "alice",
            &format!("f{i}"),
            Some(answer_challenge(&c, "alice", "guess")),
            "120",
        ));
        if i < 4 {
            assert_eq!(r.unwrap().status(), Some(401));
        } else {
            assert!(r.is_none(), "the fifth failure blocks: no answer");
        }
    }
    assert_eq!(sim.pbx.stats().blocks, 1);
    assert!(sim
        .ev_pbx
        .iter()
        .any(|e| matches!(e, PbxEvent::Blocked { failures: 5, .. })));
    // Blocked: even a correct attempt is ignored, and counted.
    assert!(sim.raw(&register_text("alice", "x", None, "120")).is_none());
    assert!(sim.pbx.stats().blocked_packets >= 1);
    // The others are not affected.
    sim.register_both();
    // After the block time the source is heard again.
    sim.run(Duration::from_secs(61));
    assert!(sim
        .raw(&register_text("alice", "later", None, "120"))
        .is_some());
}

#[test]
fn interval_too_brief_and_unregister_and_removal() {
    let mut sim = Sim::new(4);
    let c = sim.raw(&register_text("alice", "1", None, "10")).unwrap();
    let r = sim
        .raw(&register_text(
            "alice",
            "2",
            Some(answer_challenge(&c, "alice", "pw-alice-123")),
            "10",
        ))
        .unwrap();
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header("Min-Expires"), Some("60"));
    let r = sim
        .raw(&register_text(
            "alice",
            "3",
            Some(answer_challenge(&c, "alice", "pw-alice-123")),
            "999999",
        ))
        .unwrap();
    assert_eq!(r.status(), Some(200));
    assert!(
        r.header("Contact").unwrap().ends_with(";expires=3600"),
        "capped"
    );
    // Received/rport recorded in the Via of the answer.
    assert!(
        r.header("Via").unwrap().contains("received=10.0.0.66")
            || r.header("Via").unwrap().contains(EVE)
    );
    let r = sim
        .raw(&register_text(
            "alice",
            "4",
            Some(answer_challenge(&c, "alice", "pw-alice-123")),
            "0",
        ))
        .unwrap();
    assert_eq!(r.status(), Some(200));
    assert!(sim.pbx.bindings().is_empty());

    // A user removed from the directory loses the binding at once.
    sim.register_both();
    sim.pbx
        .set_accounts(accounts().into_iter().filter(|a| a.username != "bob"));
    assert_eq!(sim.pbx.bindings().len(), 1);
    sim.flush();
    assert!(sim.ev_pbx.iter().any(
        |e| matches!(e, PbxEvent::Unregistered { username, why: "account removed" } if username == "bob")
    ));
}

#[test]
fn bindings_expire() {
    let mut sim = Sim::new(5);
    let c = sim.raw(&register_text("alice", "1", None, "60")).unwrap();
    sim.raw(&register_text(
        "alice",
        "2",
        Some(answer_challenge(&c, "alice", "pw-alice-123")),
        "60",
    ))
    .unwrap();
    assert_eq!(sim.pbx.bindings().len(), 1);
    sim.run(Duration::from_secs(61));
    assert!(sim.pbx.bindings().is_empty());
}

#[test]
fn call_routed_by_extension_then_bye_through_record_route() {
    let mut sim = Sim::new(6);
    sim.register_both();
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(2));
    let cb = incoming(&sim.ev_b).expect("bob is called");
    // The offer reached bob untouched.
    let got = sim.ev_b.iter().find_map(|e| match e {
        Event::IncomingCall {
            offer, from_user, ..
        } => Some((offer.clone(), from_user.clone())),
        _ => None,
    });
    let (o, from_user) = got.unwrap();
    assert_eq!(o.unwrap().media, "10.0.0.9:4000".parse().unwrap());
    assert_eq!(from_user, "alice");
    sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(sim
        .ev_a
        .iter()
        .any(|e| matches!(e, Event::Answered { call, .. } if *call == ca)));
    assert!(sim
        .ev_b
        .iter()
        .any(|e| matches!(e, Event::Confirmed { .. })));
    // The INVITE was challenged (407) first.
    assert!(sim
        .log
        .iter()
        .any(|(f, t, d)| *f == addr(PBX) && *t == addr(A) && d.starts_with(b"SIP/2.0 407")));
    // The forwarded INVITE carries the PBX's Record-Route.
    let fwd = sim
        .log
        .iter()
        .find(|(f, t, d)| *f == addr(PBX) && *t == addr(B) && d.starts_with(b"INVITE "))
        .unwrap();
    let fwd = msg::parse(&fwd.2).unwrap();
    assert_eq!(fwd.header("Record-Route"), Some("<sip:10.0.0.10:5060;lr>"));
    assert_eq!(fwd.vias().len(), 2);
    assert!(
        fwd.header("Proxy-Authorization").is_none(),
        "credentials consumed"
    );

    sim.b.hangup(sim.now, cb).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(sim.ev_a.contains(&Event::CallEnded {
        call: ca,
        by: EndedBy::Remote
    }));
    assert!(sim.ev_b.contains(&Event::CallEnded {
        call: cb,
        by: EndedBy::Local
    }));
    let bye_path: Vec<(SocketAddr, SocketAddr)> = sim
        .log
        .iter()
        .filter(|(_, _, d)| d.starts_with(b"BYE "))
        .map(|(f, t, _)| (*f, *t))
        .collect();
    assert_eq!(bye_path, vec![(addr(B), addr(PBX)), (addr(PBX), addr(A))]);
    assert_eq!(sim.pbx.stats().calls_routed, 1);
}

#[test]
fn unknown_extension_404_unregistered_user_480_and_cancel() {
    let mut sim = Sim::new(7);
    sim.a.register(sim.now);
    sim.run(Duration::from_secs(2));
    let c1 = sim.a.invite(sim.now, "199999", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(sim
        .ev_a
        .iter()
        .any(|e| matches!(e, Event::CallFailed { call, code: 404, .. } if *call == c1)));
    let c2 = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(sim
        .ev_a
        .iter()
        .any(|e| matches!(e, Event::CallFailed { call, code: 480, .. } if *call == c2)));

    sim.b.register(sim.now);
    sim.run(Duration::from_secs(2));
    let c3 = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(1));
    let cb = incoming(&sim.ev_b).unwrap();
    sim.a.hangup(sim.now, c3).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(sim.ev_a.contains(&Event::CallEnded {
        call: c3,
        by: EndedBy::Local
    }));
    assert!(sim.ev_b.contains(&Event::CallEnded {
        call: cb,
        by: EndedBy::Remote
    }));
    // The 487 was acknowledged hop by hop: bob got an ACK from the PBX.
    assert!(sim
        .log
        .iter()
        .any(|(f, t, d)| *f == addr(PBX) && *t == addr(B) && d.starts_with(b"ACK ")));
}

#[test]
fn busy_callee_486_reaches_the_caller() {
    let mut sim = Sim::new(8);
    sim.register_both();
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(1));
    let cb = incoming(&sim.ev_b).unwrap();
    sim.b.reject(sim.now, cb, 486, "Busy Here").unwrap();
    sim.run(Duration::from_secs(2));
    assert!(sim
        .ev_a
        .iter()
        .any(|e| matches!(e, Event::CallFailed { call, code: 486, .. } if *call == ca)));
}

#[test]
fn calls_survive_loss_through_the_pbx() {
    for seed in 0..10 {
        let mut sim = Sim::new(100 + seed);
        sim.register_both();
        sim.loss = 0.15;
        let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
        sim.run(Duration::from_secs(10));
        let Some(cb) = incoming(&sim.ev_b) else {
            for (f, t, d) in &sim.log {
                eprintln!(
                    "{f} -> {t}: {}",
                    String::from_utf8_lossy(d)
                        .lines()
                        .next()
                        .unwrap_or_default()
                );
            }
            panic!("seed {seed}: {:?} {:?}", sim.ev_a, sim.pbx.stats());
        };
        sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
        sim.run(Duration::from_secs(20));
        assert!(
            sim.ev_a
                .iter()
                .any(|e| matches!(e, Event::Answered { call, .. } if *call == ca)),
            "seed {seed}: {:?}",
            sim.ev_a
        );
        assert_eq!(
            sim.ev_b
                .iter()
                .filter(|e| matches!(e, Event::IncomingCall { .. }))
                .count(),
            1,
            "seed {seed}: one call, however many retransmissions"
        );
    }
}

#[test]
fn torture_messages_never_crash_and_the_pbx_keeps_answering() {
    let mut sim = Sim::new(9);
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../myturn-sip/tests/torture");
    let mut n = 0;
    for dir in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(format!("{base}/{dir}")).unwrap() {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            sim.pbx.handle_datagram(sim.now, addr(EVE), &data);
            myturn_pbx::fuzzing::receive(&data);
            n += 1;
        }
    }
    assert_eq!(n, 61);
    sim.flush();
    let st = sim.pbx.stats();
    assert!(st.rejected >= 15, "{st:?}");
    // One unproven source: past its answer budget it is told nothing.
    assert!(st.unanswered > 0, "{st:?}");
    assert_eq!(
        sim.to_eve.len() as u64,
        20,
        "the answer burst, then silence"
    );
    // Still answering once the budget refills, and nobody got blocked by
    // malformed input alone.
    sim.run(Duration::from_secs(3));
    let ok = sim.raw(
        "OPTIONS sip:10.0.0.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.66:5060;branch=z9hG4bKafter\r\n\
         From: <sip:x@10.0.0.66>;tag=1\r\nTo: <sip:10.0.0.10:5060>\r\nCall-ID: after\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(ok.unwrap().status(), Some(200));
    sim.register_both();
}

#[test]
fn oversized_messages_are_dropped() {
    let mut sim = Sim::new(10);
    let mut big = register_text("alice", "big", None, "120");
    big.push_str(&"x".repeat(20_000));
    assert!(sim.raw(&big).is_none());
    assert_eq!(sim.pbx.stats().dropped, 1);
}

// ---- media anchoring -------------------------------------------------------

fn relay_config(ports: std::ops::RangeInclusive<u16>) -> PbxConfig {
    let mut cfg = PbxConfig::new(addr(PBX));
    cfg.media = MediaMode::Relay {
        addr: "203.0.113.10".parse().unwrap(),
        ports,
    };
    cfg
}

fn answered_sdp(ev: &[Event], ca: CallHandle) -> Option<Sdp> {
    ev.iter().find_map(|e| match e {
        Event::Answered { call, answer, .. } if *call == ca => answer.clone(),
        _ => None,
    })
}

fn incoming_sdp(ev: &[Event]) -> Option<Sdp> {
    ev.iter().find_map(|e| match e {
        Event::IncomingCall { offer, .. } => offer.clone(),
        _ => None,
    })
}

#[test]
fn relay_points_each_side_at_its_own_port_and_frees_them_on_bye() {
    let mut sim = Sim::with(20, relay_config(30000..=30003));
    sim.register_both();
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(2));
    let cb = incoming(&sim.ev_b).expect("bob is called");
    let (id, ports) = match &sim.media[0] {
        MediaCommand::Open {
            id, ports, expect, ..
        } => {
            assert_eq!(expect, &[addr(A).ip(), addr(B).ip()]);
            (*id, *ports)
        }
        other => panic!("{other:?}"),
    };
    assert!(
        ports == [30000, 30001] || ports == [30002, 30003],
        "{ports:?}"
    );
    // Bob sends to the port facing him; the key attribute is untouched.
    let to_bob = incoming_sdp(&sim.ev_b).unwrap();
    assert_eq!(
        to_bob.media,
        SocketAddr::new("203.0.113.10".parse().unwrap(), ports[1])
    );
    assert_eq!(to_bob.key.as_deref(), Some("a2V5"));
    sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
    sim.run(Duration::from_secs(2));
    let to_alice = answered_sdp(&sim.ev_a, ca).unwrap();
    assert_eq!(
        to_alice.media,
        SocketAddr::new("203.0.113.10".parse().unwrap(), ports[0])
    );
    assert_eq!(sim.pbx.media_ports(), (1, 2));
    // Each side's own media address, for the relay to send to before it
    // latches (a 2xx retransmission may repeat the callee's).
    assert!(sim.media.contains(&MediaCommand::Sdp {
        id,
        side: Side::Caller,
        sdp: "10.0.0.9:4000".parse().unwrap()
    }));
    assert!(sim.media.contains(&MediaCommand::Sdp {
        id,
        side: Side::Callee,
        sdp: "10.0.0.9:5000".parse().unwrap()
    }));
    sim.a.hangup(sim.now, ca).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(matches!(
        sim.media.last(),
        Some(MediaCommand::Close { id: i, why: "BYE" }) if *i == id
    ));
    assert_eq!(sim.pbx.media_ports(), (2, 2));
    assert!(sim.pbx.media_calls().is_empty());
    assert_eq!(sim.pbx.stats().media_calls, 1);
}

#[test]
fn a_full_relay_answers_503_and_failed_or_cancelled_calls_free_their_ports() {
    let mut sim = Sim::with(21, relay_config(30000..=30001));
    sim.register_both();
    // One pair: the first call takes it (bob is ringing), the next is refused.
    let c1 = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(1));
    let cb = incoming(&sim.ev_b).unwrap();
    let c2 = sim.b.invite(sim.now, "111000", &offer(5000)).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(
        sim.ev_b
            .iter()
            .any(|e| matches!(e, Event::CallFailed { call, code: 503, .. } if *call == c2)),
        "{:?}",
        sim.ev_b
    );
    assert_eq!(sim.pbx.stats().media_exhausted, 1);
    // Cancelled: the pair comes back.
    sim.a.hangup(sim.now, c1).unwrap();
    sim.run(Duration::from_secs(2));
    assert_eq!(sim.pbx.media_ports(), (1, 1));
    // Refused by the callee: the pair comes back.
    sim.ev_b.clear();
    let _ = cb;
    sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(1));
    let cb = incoming(&sim.ev_b).unwrap();
    assert_eq!(sim.pbx.media_ports(), (0, 1));
    sim.b.reject(sim.now, cb, 486, "Busy Here").unwrap();
    sim.run(Duration::from_secs(2));
    assert_eq!(sim.pbx.media_ports(), (1, 1));
    // The relay ending a call by itself (media timeout) frees it too.
    sim.ev_b.clear();
    sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(1));
    let id = sim.pbx.media_calls()[0].id;
    sim.pbx.handle_media_ended(id, "media timeout");
    assert_eq!(sim.pbx.media_ports(), (1, 1));
    assert_eq!(sim.pbx.stats().media_timeouts, 1);
    // A late report for a call already gone changes nothing.
    sim.pbx.handle_media_ended(id, "media timeout");
    assert_eq!(sim.pbx.stats().media_timeouts, 1);
}

#[test]
fn thousands_of_relayed_calls_leak_no_port() {
    let mut sim = Sim::with(22, relay_config(30000..=30009));
    sim.register_both();
    for i in 0..1_000u32 {
        sim.ev_a.clear();
        sim.ev_b.clear();
        let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
        sim.run(Duration::from_millis(200));
        let cb = incoming(&sim.ev_b).unwrap_or_else(|| panic!("cycle {i}: {:?}", sim.ev_a));
        match i % 3 {
            0 => {
                sim.b.answer(sim.now, cb, &offer(5000)).unwrap();
                sim.run(Duration::from_millis(200));
                sim.b.hangup(sim.now, cb).unwrap();
            }
            1 => sim.a.hangup(sim.now, ca).unwrap(),
            _ => sim.b.reject(sim.now, cb, 486, "Busy Here").unwrap(),
        }
        sim.run(Duration::from_millis(200));
        assert_eq!(sim.pbx.media_ports(), (5, 5), "cycle {i}");
        sim.media.clear();
        sim.log.clear();
    }
    assert!(sim.pbx.media_calls().is_empty());
}

#[test]
fn rtpengine_anchoring_holds_the_invite_until_the_reply_and_503s_without_one() {
    let ctl: SocketAddr = "127.0.0.1:2223".parse().unwrap();
    let mut cfg = PbxConfig::new(addr(PBX));
    cfg.media = MediaMode::Rtpengine { control: ctl };
    let mut sim = Sim::with(23, cfg);
    sim.register_both();
    let ca = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_millis(100));
    assert!(incoming(&sim.ev_b).is_none(), "held for rtpengine");
    assert_eq!(sim.control.len(), 1);
    let (cookie, dict) = {
        let raw = &sim.control[0];
        let sp = raw.iter().position(|&c| c == b' ').unwrap();
        (
            String::from_utf8(raw[..sp].to_vec()).unwrap(),
            ng::Ben::decode(&raw[sp + 1..]).unwrap(),
        )
    };
    assert_eq!(dict.get("command").unwrap().text(), Some("offer"));
    assert_eq!(
        dict.get("received-from").unwrap(),
        &ng::Ben::strs(&["IP4", "10.0.0.1"])
    );
    let sdp = String::from_utf8(dict.get("sdp").unwrap().bytes().unwrap().to_vec()).unwrap();
    assert!(sdp.contains("m=audio 4000 "), "{sdp}");
    // rtpengine's reply: the SDP pointing at it.
    let anchored = sdp
        .replace("10.0.0.9", "192.0.2.50")
        .replace("m=audio 4000", "m=audio 41000");
    let reply = ng::frame(
        &cookie,
        &ng::Ben::dict(vec![
            ("result", ng::Ben::str("ok")),
            ("sdp", ng::Ben::str(&anchored)),
        ]),
    );
    sim.pbx.handle_control(sim.now, &reply);
    sim.run(Duration::from_secs(1));
    assert_eq!(
        incoming_sdp(&sim.ev_b).unwrap().media,
        "192.0.2.50:41000".parse().unwrap()
    );
    // A repeated reply (a retransmission answered twice) changes nothing.
    sim.pbx.handle_control(sim.now, &reply);
    sim.pbx.handle_control(sim.now, b"garbage");
    sim.run(Duration::from_millis(10));
    assert_eq!(
        sim.ev_b
            .iter()
            .filter(|e| matches!(e, Event::IncomingCall { .. }))
            .count(),
        1
    );
    let cb = incoming(&sim.ev_b).unwrap();
    sim.b.reject(sim.now, cb, 486, "Busy Here").unwrap();
    sim.run(Duration::from_secs(1));
    let last = String::from_utf8_lossy(sim.control.last().unwrap()).into_owned();
    assert!(last.contains("7:command6:delete"), "{last}");
    assert!(sim
        .ev_a
        .iter()
        .any(|e| matches!(e, Event::CallFailed { call, code: 486, .. } if *call == ca)));

    // rtpengine silent: the offer is sent 4 times, then the caller has 503.
    sim.control.clear();
    sim.ev_b.clear();
    let c2 = sim.a.invite(sim.now, "111001", &offer(4000)).unwrap();
    sim.run(Duration::from_secs(8));
    let offers = sim
        .control
        .iter()
        .filter(|c| String::from_utf8_lossy(c).contains("7:command5:offer"))
        .count();
    assert_eq!(offers, 4, "one offer, three repeats");
    // And the half-made call is deleted, in case rtpengine got it after all.
    assert!(String::from_utf8_lossy(sim.control.last().unwrap()).contains("7:command6:delete"));
    assert!(incoming(&sim.ev_b).is_none());
    assert!(
        sim.ev_a
            .iter()
            .any(|e| matches!(e, Event::CallFailed { call, code: 503, .. } if *call == c2)),
        "{:?}",
        sim.ev_a
    );
    assert_eq!(sim.pbx.stats().control_retransmissions, 3);
}

#[test]
fn a_nat_rebinding_is_found_by_the_keepalive_and_registered_at_once() {
    let mut sim = Sim::new(24);
    let first: SocketAddr = "198.51.100.2:40001".parse().unwrap();
    let second: SocketAddr = "198.51.100.2:40777".parse().unwrap();
    sim.nat_a = Some(first);
    sim.register_both();
    assert_eq!(sim.pbx.bindings()[0].2, first);
    // The NAT forgets alice's mapping and makes a new one: the PBX's
    // INVITEs would now go to an address that leads nowhere.
    sim.nat_a = Some(second);
    sim.run(Duration::from_secs(21));
    let options = sim
        .log
        .iter()
        .filter(|(f, t, d)| *f == second && *t == addr(PBX) && d.starts_with(b"OPTIONS "))
        .count();
    assert_eq!(options, 1, "one keep-alive in 21 s");
    assert!(
        sim.ev_a.contains(&Event::PublicAddressChanged {
            from: first,
            to: second
        }),
        "{:?}",
        sim.ev_a
    );
    let alice = sim
        .pbx
        .bindings()
        .into_iter()
        .find(|b| b.0 == "alice")
        .unwrap();
    assert_eq!(alice.2, second);
    assert!(alice.1.contains("198.51.100.2:40777"), "{alice:?}");
    // And a call reaches her there.
    sim.b.invite(sim.now, "111000", &offer(5000)).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(incoming(&sim.ev_a).is_some(), "{:?}", sim.ev_a);
    // Keep-alives go on every 20 s, and a stable mapping registers nothing.
    let regs = |sim: &Sim| {
        sim.log
            .iter()
            .filter(|(_, _, d)| d.starts_with(b"REGISTER "))
            .count()
    };
    let before = regs(&sim);
    sim.run(Duration::from_secs(41));
    assert_eq!(regs(&sim), before);
    let options = sim
        .log
        .iter()
        .filter(|(f, _, d)| *f == second && d.starts_with(b"OPTIONS "))
        .count();
    assert_eq!(options, 3);
}

#[test]
fn anchoring_parsers_survive_torture_and_truncation() {
    // The fuzz target's body over the torture corpus, truncated SDP and
    // ng replies, and flipped bytes: nothing panics.
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../myturn-sip/tests/torture");
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for dir in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(format!("{base}/{dir}")).unwrap() {
            inputs.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    let sdp = offer(4000).into_bytes();
    let reply = b"k1 d3:sdp5:v=0\r\n6:result2:ok6:totalsd3:RTPd7:packetsi12eeee".to_vec();
    for whole in [sdp, reply] {
        for cut in 0..=whole.len() {
            inputs.push(whole[..cut].to_vec());
        }
        for i in 0..whole.len() {
            let mut flipped = whole.clone();
            flipped[i] ^= 0x5a;
            inputs.push(flipped);
        }
    }
    for data in &inputs {
        myturn_pbx::fuzzing::anchor(data);
    }
    assert!(inputs.len() > 300);
}
