//! The sans-IO PBX: [`Pbx`], a thin front over its parts, like str0m's
//! `Rtc`. It takes every input (`handle_datagram`, `handle_timeout`,
//! `handle_control`, `handle_media_ended`, `set_accounts`), hands each to
//! the part it is for — the registrar (`registrar.rs`), the proxy
//! (`proxy.rs`) or media anchoring ([`crate::media`]) — lending it
//! the configuration, the RNG and the shared outbox (`ctx.rs`), and
//! gives out what they produced (`poll_transmit`, `poll_event`,
//! `poll_media`, `poll_control`, `poll_timeout`).
//!
//! What it answers itself: server-transaction matching (retransmissions
//! absorbed), 483 for Max-Forwards 0, OPTIONS, and 405/501 for methods no
//! part takes.
//!
//! Before anything is parsed, the flood guard ([`crate::guard`]) decides
//! whether the datagram is read at all; after a request was handled, the
//! answers to its source pass the guard's answer budget unless the source
//! has proved a password (no reflection), and a withheld answer takes its
//! server transaction with it, so no timer sends it later.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use myturn_sip::build::{self, token, Reply};
use myturn_sip::msg::{self, Message, Method};
use myturn_sip::server::{self, Arrival};
use rand_core::RngCore;
use rsip::headers::{self as h, UntypedHeader};

pub use crate::config::{Account, Config};
use crate::ctx::{Ctx, Shared};
pub use crate::guard::{BlockReason, Blocked};
pub use crate::limits::{FloodConfig, Limit, Net};
use crate::media::{Anchoring, MediaCallInfo, MediaCommand};
use crate::proxy::Proxy;
use crate::registrar::Registrar;
pub use crate::report::{Event, Stats};
use crate::timer::Timer;
pub use myturn_sip::Transmit;

/// Methods the PBX itself answers or routes.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO";

/// The PBX: registrar, proxy and media anchoring behind one sans-IO front.
pub struct Pbx {
    cfg: Config,
    rng: Box<dyn RngCore + Send>,
    sh: Shared,
    registrar: Registrar,
    proxy: Proxy,
    media: Anchoring,
}

impl std::fmt::Debug for Pbx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbx")
            .field("addr", &self.cfg.addr)
            .field("accounts", &self.registrar.account_count())
            .field("bindings", &self.registrar.binding_count())
            .field("stats", &self.sh.stats)
            .finish_non_exhaustive()
    }
}

impl Pbx {
    /// A PBX with `cfg`, its nonce key and relay port order drawn from `rng`, started at `now`.
    pub fn new(cfg: Config, mut rng: Box<dyn RngCore + Send>, now: Instant) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let registrar = Registrar::new(&cfg, key, now);
        let media = Anchoring::new(&cfg.media, cfg.media_timeout, rng.next_u32() as usize);
        Pbx {
            sh: Shared::new(&cfg, now),
            proxy: Proxy::new(cfg.addr),
            registrar,
            media,
            rng,
            cfg,
        }
    }

    /// The front split into what it lends and the parts it lends it to.
    fn parts(&mut self) -> (Ctx<'_>, &mut Registrar, &mut Proxy, &mut Anchoring) {
        let cx = Ctx {
            cfg: &self.cfg,
            rng: self.rng.as_mut(),
            sh: &mut self.sh,
        };
        (cx, &mut self.registrar, &mut self.proxy, &mut self.media)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Changes whenever the set of bindings changes (to refresh copies of
    /// [`Pbx::bindings`] only when needed).
    pub fn bindings_generation(&self) -> u64 {
        self.registrar.generation()
    }

    /// Number of live bindings.
    pub fn binding_count(&self) -> usize {
        self.registrar.binding_count()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.sh.stats
    }

    /// Live bindings: (username, contact, source).
    pub fn bindings(&self) -> Vec<(String, String, SocketAddr)> {
        self.registrar.bindings()
    }

    /// Sources blocked at `now`, oldest block first.
    pub fn blocked(&self, now: Instant) -> Vec<Blocked> {
        self.sh.guard.blocked(now)
    }

    /// How many sources are blocked at `now`.
    pub fn blocked_count(&self, now: Instant) -> usize {
        self.sh.guard.blocked_count(now)
    }

    /// Lifts `ip`'s block (an operator's decision); its counts start
    /// afresh. `true` if it was blocked.
    pub fn unblock(&mut self, now: Instant, ip: IpAddr) -> bool {
        let was = self.sh.guard.unblock(&self.cfg, now, ip);
        if was {
            tracing::info!(%ip, "SIP source unblocked");
        }
        was
    }

    /// Sources the flood guard tracks now.
    pub fn tracked_sources(&self) -> usize {
        self.sh.guard.tracked()
    }

    /// Replaces the directory. Users no longer in it lose their binding at
    /// once (logout, kick, lease expiry in the pairing server).
    pub fn set_accounts(&mut self, accounts: impl IntoIterator<Item = Account>) {
        self.registrar.set_accounts(&mut self.sh, accounts);
    }

    // ---- input -----------------------------------------------------------

    /// Feeds one datagram. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        let sh = &mut self.sh;
        if !sh.guard.admit(
            &self.cfg,
            &mut sh.stats,
            &mut sh.events,
            now,
            src.ip(),
            data.len(),
        ) {
            return; // blocked: never parsed, counted
        }
        match msg::parse_with_limit(data, self.cfg.max_message_size) {
            Ok(m) if m.is_request() => {
                let before = self.sh.transmits.len();
                let key = self.on_request(now, src, m);
                if self.sh.transmits.len() > before {
                    self.budget_answers(now, src, before, key);
                }
            }
            Ok(m) => {
                let (mut cx, _, proxy, media) = self.parts();
                proxy.on_response(&mut cx, media, now, src, m);
            }
            Err(r) => {
                let rng = self.rng.as_mut();
                let stats = &mut self.sh.stats;
                let answer = server::malformed(data, src, &r, || token(rng, 10))
                    .count(&mut stats.rejected, &mut stats.dropped);
                if let Some(t) = answer {
                    if sh_may_answer(&mut self.sh, &self.cfg, now, src.ip()) {
                        self.sh.transmits.push_back(t);
                    }
                }
            }
        }
    }

    /// The answers a request from `src` produced (queued from `before`
    /// on) go only within the source's answer budget; when one is
    /// withheld, the request's server transaction (`key`) is dropped too.
    fn budget_answers(
        &mut self,
        now: Instant,
        src: SocketAddr,
        before: usize,
        key: Option<String>,
    ) {
        let ip = src.ip();
        let (cfg, sh) = (&self.cfg, &mut self.sh);
        let mut withheld = false;
        let mut i = 0usize;
        let mut transmits = std::mem::take(&mut sh.transmits);
        transmits.retain(|t| {
            let mine = i >= before && t.dest.ip() == ip && t.payload.starts_with(b"SIP/2.0 ");
            i += 1;
            if mine && !sh_may_answer(sh, cfg, now, ip) {
                withheld = true;
                return false;
            }
            true
        });
        sh.transmits = transmits;
        if withheld {
            if let Some(k) = key {
                sh.servers.remove(&k);
                sh.timers.set(Timer::Server(k), None);
            }
        }
    }

    /// Handles a request; the key of its server transaction, if it has
    /// one (REGISTER is answered statelessly).
    fn on_request(&mut self, now: Instant, src: SocketAddr, req: Message) -> Option<String> {
        let too_many_hops = req.header("Max-Forwards").is_some_and(|m| m.trim() == "0");
        if req.method() == &Method::REGISTER {
            let (mut cx, registrar, _, _) = self.parts();
            if too_many_hops {
                cx.respond(now, &req, src, Reply::new(483, "Too Many Hops"));
            } else {
                registrar.on_register(&mut cx, now, src, &req);
            }
            return None;
        }
        let key = build::server_key(&req);
        self.in_transaction(now, src, req, key.clone(), too_many_hops);
        Some(key)
    }

    /// A request that is not a REGISTER, under server transaction `key`.
    fn in_transaction(
        &mut self,
        now: Instant,
        src: SocketAddr,
        req: Message,
        key: String,
        too_many_hops: bool,
    ) {
        let (mut cx, registrar, proxy, media) = self.parts();
        let cx = &mut cx;
        let method = req.method().clone();
        match cx.sh.servers.arrival(now, &key, &method) {
            Arrival::Absorbed(resend) => return cx.sh.absorbed(resend),
            Arrival::AckAbsorbed => return cx.sh.arm_server(key),
            Arrival::New => {}
        }
        if too_many_hops && method != Method::ACK {
            let dest = build::response_dest(&req, src);
            cx.sh.servers.open(key, method == Method::INVITE, dest);
            return cx.respond(now, &req, src, Reply::new(483, "Too Many Hops"));
        }
        let in_dialog = req.to().is_some_and(|t| t.tag().is_some());
        match method {
            Method::Known(rsip::Method::Cancel) => return proxy.on_cancel(cx, now, src, &req),
            Method::Known(rsip::Method::Ack) => {
                return proxy.route_in_dialog(cx, registrar, media, now, src, &req)
            }
            _ if in_dialog => return proxy.route_in_dialog(cx, registrar, media, now, src, &req),
            _ => {}
        }
        let invite = method == Method::INVITE;
        cx.sh
            .servers
            .open(key.clone(), invite, build::response_dest(&req, src));
        if invite {
            proxy.on_invite(cx, registrar, media, now, src, req);
        } else {
            answer_itself(cx, now, src, &req, &method);
        }
        // A request left unanswered (a source blocked mid-way) keeps no
        // transaction: nothing would ever end it.
        if cx
            .sh
            .servers
            .get(&key)
            .is_some_and(|t| t.last_response.is_none())
        {
            cx.sh.servers.remove(&key);
        }
    }

    // ---- time --------------------------------------------------------------

    /// Fires every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (mut cx, registrar, proxy, media) = self.parts();
        while let Some(timer) = cx.sh.timers.pop_expired(now) {
            match timer {
                Timer::Server(key) => cx.sh.server_timer(now, key),
                Timer::Forward(branch) => proxy.on_timer(&mut cx, media, now, branch),
            }
        }
        proxy.handle_timeout(&mut cx, now);
        registrar.handle_timeout(&mut cx, now);
        cx.sh.guard.handle_timeout(cx.cfg, now);
        while let Some(settled) = media.handle_timeout(&mut cx.sh.stats, now) {
            proxy.settle(&mut cx, media, now, settled);
        }
    }

    /// When [`Pbx::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.sh.timers.next_timeout(),
            self.proxy.poll_timeout(),
            self.media.poll_timeout(),
            self.registrar.poll_timeout(),
            Some(self.sh.guard.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next SIP datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.sh.transmits.pop_front()
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.sh.events.pop_front()
    }

    // ---- media's I/O side ----------------------------------------------

    /// The next thing the relay's sockets must do.
    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.media.poll_command()
    }

    /// The next control datagram for rtpengine.
    pub fn poll_control(&mut self) -> Option<Transmit> {
        self.media.poll_control()
    }

    /// A datagram from rtpengine's control port. Unknown cookies and
    /// garbage are dropped and counted.
    pub fn handle_control(&mut self, now: Instant, datagram: &[u8]) {
        let (mut cx, _, proxy, media) = self.parts();
        if let Some(settled) = media.handle_control(&mut cx.sh.stats, datagram) {
            proxy.settle(&mut cx, media, now, settled);
        }
    }

    /// The relay gave up on call `id` (no media for the media timeout, or
    /// its ports could not be bound): forget it and free its ports.
    pub fn handle_media_ended(&mut self, id: u64, why: &'static str) {
        self.media.handle_ended(&mut self.sh.stats, id, why);
    }

    /// How many calls are anchored now.
    pub fn anchored_calls(&self) -> usize {
        self.media.anchored_calls()
    }

    /// Anchored calls now.
    pub fn media_calls(&self) -> Vec<MediaCallInfo> {
        self.media.calls()
    }

    /// Relay port pairs: (free, capacity).
    pub fn media_ports(&self) -> (usize, usize) {
        self.media.ports()
    }
}

/// [`Guard::may_answer`](crate::guard::Guard) over the shared side.
fn sh_may_answer(sh: &mut Shared, cfg: &Config, now: Instant, ip: IpAddr) -> bool {
    sh.guard.may_answer(cfg, &mut sh.stats, now, ip)
}

/// A request outside any dialog that is not for the registrar or the
/// proxy: OPTIONS, a BYE for no call, methods we do not take.
fn answer_itself(cx: &mut Ctx<'_>, now: Instant, src: SocketAddr, req: &Message, method: &Method) {
    let (code, reason) = match method {
        Method::Known(rsip::Method::Options) => (200, "OK"),
        Method::Known(rsip::Method::Bye) => {
            let reply = Reply::new(481, "Call/Transaction Does Not Exist");
            return cx.respond(now, req, src, reply);
        }
        Method::Extension(_) => (501, "Not Implemented"),
        _ => (405, "Method Not Allowed"),
    };
    let extra = vec![h::Allow::new(ALLOW).into()];
    cx.respond(now, req, src, Reply::new(code, reason).headers(extra));
}
