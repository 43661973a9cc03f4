//! A simulated UDP network, two user agents and a scripted registrar +
//! stateless proxy, stepped through simulated time. The proxy is a test
//! double: the built-in PBX and Kamailio are exercised in their own tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_sip::digest::{self, Algorithm, Challenge, Credentials};
use myturn_sip::msg;
use myturn_sip::ua::{Config, Event, UserAgent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const PROXY: &str = "10.0.0.10:5060";
pub const A: &str = "10.0.0.1:5060";
pub const B: &str = "10.0.0.2:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One datagram in flight.
#[derive(Debug, Clone)]
pub struct Packet {
    pub at: Instant,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

impl Packet {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
    pub fn first_line(&self) -> String {
        self.text().lines().next().unwrap_or_default().to_owned()
    }
}

/// The scripted registrar and stateless proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    pub passwords: HashMap<String, String>,
    pub bindings: HashMap<String, SocketAddr>,
    pub algorithm: Algorithm,
    pub min_expires: Option<u32>,
    /// Answer INVITEs to unknown users with this code (404 by default).
    pub expires_granted: u32,
    pub nonce_counter: u64,
    /// Every request the proxy received, first lines, in order.
    pub seen: Vec<String>,
    pub record_route: bool,
    /// When set, the proxy answers nothing (a dead registrar).
    pub dead: bool,
}

impl Proxy {
    pub fn new(users: &[(&str, &str)]) -> Self {
        Proxy {
            addr: addr(PROXY),
            passwords: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            bindings: HashMap::new(),
            algorithm: Algorithm::Md5,
            min_expires: None,
            expires_granted: 60,
            nonce_counter: 0,
            seen: Vec::new(),
            record_route: true,
            dead: false,
        }
    }

    fn reply(&self, req: &msg::Message, code: u16, reason: &str, extra: &[String]) -> Vec<u8> {
        let mut s = format!("SIP/2.0 {code} {reason}\r\n");
        for v in req.headers("Via") {
            s.push_str(&format!("Via: {v}\r\n"));
        }
        for n in ["From", "Call-ID", "CSeq"] {
            s.push_str(&format!("{n}: {}\r\n", req.header(n).unwrap()));
        }
        let to = req.header("To").unwrap();
        if req.to().unwrap().tag().is_some() {
            s.push_str(&format!("To: {to}\r\n"));
        } else {
            s.push_str(&format!("To: {to};tag=proxy1\r\n"));
        }
        for e in extra {
            s.push_str(e);
            s.push_str("\r\n");
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s.into_bytes()
    }

    /// Handles one datagram; returns what to send.
    pub fn handle(&mut self, from: SocketAddr, data: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        if self.dead {
            return Vec::new();
        }
        let Ok(m) = msg::parse(data) else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(data).into_owned();
        if !m.is_request() {
            // Pop our Via; send to the next one's sent-by.
            let vias = m.vias();
            if vias.len() < 2 {
                return Vec::new();
            }
            let next = vias[1].sent_by().parse().unwrap();
            let first_via = text.find("\r\nVia: ").unwrap();
            let end = text[first_via + 2..].find("\r\n").unwrap() + first_via + 2;
            let out = format!("{}{}", &text[..first_via], &text[end..]);
            return vec![(next, out.into_bytes())];
        }
        self.seen.push(text.lines().next().unwrap().to_owned());
        let method = m.method().to_string();
        if method == "REGISTER" {
            return vec![(from, self.register(&m))];
        }
        // Requests for us (Route: <sip:proxy;lr>): strip the route and
        // forward to the Request-URI.
        let own_route = format!("Route: <sip:{};lr>\r\n", self.addr);
        let mut text = text.replacen(&own_route, "", 1);
        let ruri = m.request_uri().to_owned();
        let user = ruri
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap()
            .to_owned();
        let host = ruri.rsplit('@').next().unwrap().split(';').next().unwrap();
        let dest = if host == self.addr.to_string() || host == self.addr.ip().to_string() {
            match self.bindings.get(&user) {
                Some(d) => {
                    let new_uri = format!("sip:{user}@{d}");
                    text = text.replacen(&ruri, &new_uri, 1);
                    *d
                }
                None if method == "ACK" => return Vec::new(),
                None => return vec![(from, self.reply(&m, 404, "Not Found", &[]))],
            }
        } else {
            match host.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => return Vec::new(),
            }
        };
        // Stateless proxy: a branch derived from the incoming one, so a
        // CANCEL and its INVITE get the same one (RFC 3261 §16.11).
        let in_branch = m.top_via().unwrap().branch().unwrap_or_default().to_owned();
        let via = format!(
            "Via: SIP/2.0/UDP {};branch=z9hG4bKp{}\r\n",
            self.addr,
            in_branch.trim_start_matches("z9hG4bK")
        );
        let line_end = text.find("\r\n").unwrap() + 2;
        let mut rr = String::new();
        if self.record_route && method == "INVITE" && m.to().unwrap().tag().is_none() {
            rr = format!("Record-Route: <sip:{};lr>\r\n", self.addr);
        }
        let out = format!("{}{via}{rr}{}", &text[..line_end], &text[line_end..]);
        vec![(dest, out.into_bytes())]
    }

    fn register(&mut self, m: &msg::Message) -> Vec<u8> {
        let user = m
            .to()
            .unwrap()
            .uri
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap()
            .to_owned();
        let creds = m
            .header("Authorization")
            .and_then(|a| Credentials::parse(a).ok());
        let ok = creds.as_ref().is_some_and(|c| {
            c.username == user
                && self
                    .passwords
                    .get(&user)
                    .is_some_and(|pw| digest::verify(c, pw, "REGISTER"))
        });
        if !ok {
            self.nonce_counter += 1;
            let ch = Challenge {
                realm: "sim".into(),
                nonce: format!("nonce{}", self.nonce_counter),
                opaque: None,
                algorithm: self.algorithm,
                qop_auth: true,
                stale: false,
            };
            return self.reply(
                m,
                401,
                "Unauthorized",
                &[format!("WWW-Authenticate: {}", ch.to_header_value())],
            );
        }
        let expires = m.expires().unwrap_or(3600);
        if let Some(min) = self.min_expires {
            if expires > 0 && expires < min {
                return self.reply(
                    m,
                    423,
                    "Interval Too Brief",
                    &[format!("Min-Expires: {min}")],
                );
            }
        }
        let contact = m.name_addrs("Contact").into_iter().next().unwrap();
        let caddr: SocketAddr = contact.uri.rsplit('@').next().unwrap().parse().unwrap();
        if expires == 0 {
            self.bindings.remove(&user);
            return self.reply(m, 200, "OK", &[]);
        }
        self.bindings.insert(user, caddr);
        let granted = expires.min(self.expires_granted);
        self.reply(
            m,
            200,
            "OK",
            &[format!("Contact: <{}>;expires={granted}", contact.uri)],
        )
    }
}

/// Decides which datagrams the network loses.
pub type DropRule = Box<dyn FnMut(&Packet) -> bool>;

/// The simulation: the network, the proxy, two agents and their events.
pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub a: UserAgent,
    pub b: UserAgent,
    pub proxy: Proxy,
    pub in_flight: Vec<Packet>,
    /// Every datagram put on the wire (before loss).
    pub wire: Vec<Packet>,
    pub events_a: Vec<Event>,
    pub events_b: Vec<Event>,
    pub loss: f64,
    pub max_delay_ms: u64,
    /// Drop datagrams for which this returns true (before random loss).
    pub drop_rule: Option<DropRule>,
    rng: StdRng,
}

pub fn ua(local: &str, user: &str, pw: &str, seed: u64) -> UserAgent {
    let mut cfg = Config::new(addr(local), addr(PROXY), user, pw);
    cfg.expires = 60;
    UserAgent::new(cfg, Box::new(StdRng::seed_from_u64(seed)))
}

impl Sim {
    pub fn new(seed: u64) -> Sim {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            a: ua(A, "111000", "pw-a", seed),
            b: ua(B, "111001", "pw-b", seed + 1),
            proxy: Proxy::new(&[("111000", "pw-a"), ("111001", "pw-b")]),
            in_flight: Vec::new(),
            wire: Vec::new(),
            events_a: Vec::new(),
            events_b: Vec::new(),
            loss: 0.0,
            max_delay_ms: 5,
            drop_rule: None,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
        }
    }

    fn put(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let delay = self.rng.gen_range(1..=self.max_delay_ms.max(1));
        let p = Packet {
            at: self.now + Duration::from_millis(delay),
            from,
            to,
            data,
        };
        self.wire.push(p.clone());
        if let Some(rule) = self.drop_rule.as_mut() {
            if rule(&p) {
                return;
            }
        }
        if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
            return;
        }
        self.in_flight.push(p);
    }

    fn flush(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.put(addr(A), t.dest, t.payload);
        }
        while let Some(t) = self.b.poll_transmit() {
            self.put(addr(B), t.dest, t.payload);
        }
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    /// Runs until `until` (simulated), delivering packets and firing timers
    /// in time order.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.flush();
            let next_packet = self.in_flight.iter().map(|p| p.at).min();
            let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let next = [next_packet, next_timer].into_iter().flatten().min();
            let Some(next) = next.filter(|n| *n <= until) else {
                self.now = until;
                self.a.handle_timeout(until);
                self.b.handle_timeout(until);
                self.flush();
                return;
            };
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let i = self.in_flight.iter().position(|p| p.at == next).unwrap();
                let p = self.in_flight.remove(i);
                if p.to == addr(A) {
                    self.a.handle_datagram(self.now, p.from, &p.data);
                } else if p.to == addr(B) {
                    self.b.handle_datagram(self.now, p.from, &p.data);
                } else if p.to == self.proxy.addr {
                    for (to, data) in self.proxy.handle(p.from, &p.data) {
                        self.put(self.proxy.addr, to, data);
                    }
                }
            } else {
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
            }
        }
    }

    /// Registers both agents (asserting success).
    pub fn register_both(&mut self) {
        self.a.register(self.now);
        self.b.register(self.now);
        self.run_for(Duration::from_secs(5));
        assert!(self.a.is_registered(), "A events: {:?}", self.events_a);
        assert!(self.b.is_registered(), "B events: {:?}", self.events_b);
    }

    pub fn sent_by(&self, from: &str, prefix: &str) -> Vec<&Packet> {
        self.wire
            .iter()
            .filter(|p| p.from == addr(from) && p.data.starts_with(prefix.as_bytes()))
            .collect()
    }
}
