//! What the front ([`crate::core::Pbx`]) lends its parts (registrar,
//! proxy, media anchoring) while it handles one input: the configuration,
//! the injected RNG, and the [`Shared`] side every part writes to — the
//! datagrams and events the front hands out, the counters, the server
//! transactions (with their timers) that every answer goes through, and
//! the flood guard's table of sources (which the registrar tells of
//! failed and passed credentials).
//!
//! The parts own their state and take a [`Ctx`] per call; none of them
//! holds another, so nothing here knows any part.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use myturn_sip::build::{self, token, Reply};
use myturn_sip::msg::Message;
use myturn_sip::server::ServerTransactions;
use myturn_sip::Transmit;
use rand_core::RngCore;

use crate::config::Config;
use crate::guard::Guard;
use crate::report::{Event, Stats};
use crate::timer::{Timer, TimerTable};

/// What the parts of the PBX share: owned by the front.
#[derive(Debug)]
pub(crate) struct Shared {
    /// SIP datagrams to send, for [`crate::core::Pbx::poll_transmit`].
    pub(crate) transmits: VecDeque<Transmit>,
    /// Events to report, for [`crate::core::Pbx::poll_event`].
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: Stats,
    pub(crate) servers: ServerTransactions,
    /// Every per-transaction deadline.
    pub(crate) timers: TimerTable,
    /// Sources: rates, blocks, who proved a password.
    pub(crate) guard: Guard,
}

impl Shared {
    pub(crate) fn new(cfg: &Config, now: Instant) -> Self {
        Shared {
            guard: Guard::new(now),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            servers: ServerTransactions::new(cfg.timers),
            timers: TimerTable::default(),
        }
    }

    pub(crate) fn send(&mut self, dest: SocketAddr, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { dest, payload });
    }

    /// Puts the current deadline of server transaction `key` in the timer
    /// table. Called after anything that may move it.
    pub(crate) fn arm_server(&mut self, key: String) {
        let at = self.servers.get(&key).and_then(|t| t.deadline());
        self.timers.set(Timer::Server(key), at);
    }

    /// Records response `bytes` (a `code`) in server transaction `key`
    /// when it is open, and sends it to `dest`.
    pub(crate) fn answer(
        &mut self,
        now: Instant,
        key: String,
        code: u16,
        bytes: Vec<u8>,
        dest: SocketAddr,
    ) {
        let t = self.servers.respond(now, &key, code, bytes, dest);
        self.arm_server(key);
        self.transmits.push_back(t);
    }

    /// A request retransmission a server transaction absorbed.
    pub(crate) fn absorbed(&mut self, resend: Option<Transmit>) {
        self.stats.absorbed += 1;
        self.transmits.extend(resend);
    }

    /// Server transaction `key`'s timer, popped from the table.
    pub(crate) fn server_timer(&mut self, now: Instant, key: String) {
        let Some(tx) = self.servers.get(&key) else {
            return;
        };
        if tx.deadline().is_none_or(|d| d > now) {
            return; // stale entry: the deadline moved
        }
        let resend = self.servers.fire(now, &key);
        self.transmits.extend(resend);
        // Nothing to arm once it is gone.
        self.arm_server(key);
    }
}

/// The front's loan to a part, for one input.
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) rng: &'a mut dyn RngCore,
    pub(crate) sh: &'a mut Shared,
}

impl Ctx<'_> {
    /// Counts a failed authentication by `who` from `ip`; blocks the IP
    /// past [`Config::fail_limit`].
    pub(crate) fn failed(&mut self, now: Instant, ip: std::net::IpAddr, who: &str) {
        let sh = &mut *self.sh;
        sh.guard
            .failed(self.cfg, &mut sh.stats, &mut sh.events, now, ip, who);
    }

    /// `ip`'s credentials passed: it is answered freely for a while.
    pub(crate) fn proved(&mut self, now: Instant, ip: std::net::IpAddr) {
        self.sh.guard.proved(self.cfg, now, ip);
    }

    /// Whether `ip` is blocked now.
    pub(crate) fn is_blocked(&self, now: Instant, ip: std::net::IpAddr) -> bool {
        self.sh.guard.is_blocked(ip, now)
    }

    /// A fresh To tag (or other token) from the RNG.
    pub(crate) fn tag(&mut self) -> String {
        token(self.rng, 10)
    }

    /// Answers `req` (through its server transaction, if it has one),
    /// with a fresh To tag on anything but 100.
    pub(crate) fn respond(
        &mut self,
        now: Instant,
        req: &Message,
        src: SocketAddr,
        reply: Reply<'_>,
    ) {
        let code = reply.code();
        let tag = (code > 100).then(|| self.tag());
        let reply = match &tag {
            Some(t) => reply.tag(t),
            None => reply,
        };
        let bytes = reply.for_source(req, src);
        let dest = build::response_dest(req, src);
        if req.method() == &myturn_sip::msg::Method::REGISTER {
            // Answered statelessly: no transaction to record it in.
            return self.sh.send(dest, bytes);
        }
        let key = build::server_key(req);
        self.sh.answer(now, key, code, bytes, dest);
    }
}
