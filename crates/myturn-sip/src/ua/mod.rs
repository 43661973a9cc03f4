//! The sans-IO SIP user agent: registration, calls and dialogs on top of
//! the transactions in [`crate::transaction`].
//!
//! Drive it like quinn-proto: feed datagrams with
//! [`UserAgent::handle_datagram`] and expiries with
//! [`UserAgent::handle_timeout`], then drain [`UserAgent::poll_transmit`]
//! and [`UserAgent::poll_event`], and sleep until
//! [`UserAgent::poll_timeout`]. Commands ([`UserAgent::register`],
//! [`UserAgent::invite`], [`UserAgent::answer`], [`UserAgent::hangup`], …)
//! only queue work. Nothing here reads a clock, touches a socket or draws
//! randomness from anywhere but the RNG it was given.
//!
//! [`UserAgent`] is a thin front, as str0m's `Rtc` is: it routes each
//! message and expiry to the part that owns it and lends that part a
//! `Context` (configuration, RNG, outbox, transactions, the timer table).
//! The parts: `registration` (with `auth`), `keepalive`, and the calls
//! (`calls` for the set, `call` for one: `call::uac`, `call::uas`,
//! `call::dialog`); every timer is a variant in `timer`.

mod auth;
mod call;
mod calls;
mod config;
mod context;
mod event;
mod keepalive;
mod registration;
mod timer;

use std::net::SocketAddr;
use web_time::Instant;

use rand_core::RngCore;
use rsip::headers::{self as h, UntypedHeader};

use self::call::dialog::TIMER;
use self::calls::Calls;
use self::context::{Context, Owner};
use self::keepalive::KeepAlive;
use self::registration::Registration;
use self::timer::Timer;
use crate::build::{self, Reply};
use crate::msg::{self, Message, Method};
use crate::server::{self, Arrival};
use crate::transaction::ClientOutcome;

pub use self::config::{Config, Transport, ALLOW};
pub use self::event::{CallHandle, EndedBy, Event, Stats, UaError};
pub use crate::Transmit;

/// The user agent core.
pub struct UserAgent {
    ctx: Context,
    reg: Registration,
    keepalive: KeepAlive,
    calls: Calls,
    session_id: u64,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("user", &self.ctx.cfg.username)
            .field("local", &self.ctx.cfg.local)
            .field("calls", &self.calls.len())
            .field("stats", &self.ctx.out.stats)
            .finish_non_exhaustive()
    }
}

impl UserAgent {
    /// An agent with `cfg`, drawing tags, branches and Call-IDs from `rng`.
    pub fn new(cfg: Config, mut rng: Box<dyn RngCore + Send>) -> Self {
        let reg = Registration::new(cfg.expires, rng.as_mut());
        let session_id = rng.next_u64() >> 1;
        UserAgent {
            keepalive: KeepAlive::new(cfg.keepalive),
            ctx: Context::new(cfg, rng),
            reg,
            calls: Calls::new(),
            session_id,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.ctx.cfg
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.ctx.out.stats
    }

    /// Whether a registration is in force.
    pub fn is_registered(&self) -> bool {
        self.reg.is_registered()
    }

    /// A fresh SDP session id (for building offers and answers).
    pub fn new_session_id(&mut self) -> u64 {
        self.session_id += 1;
        self.session_id
    }

    /// The SIP Call-ID of a call.
    pub fn sip_call_id(&self, call: CallHandle) -> Option<&str> {
        self.calls.get(call).map(|c| c.call_id.as_str())
    }

    // ---- commands --------------------------------------------------------

    /// Registers (or refreshes) the binding.
    pub fn register(&mut self, now: Instant) {
        self.reg.register(&mut self.ctx, now);
    }

    /// Removes the binding (`Expires: 0`); [`Event::Unregistered`] follows.
    pub fn unregister(&mut self, now: Instant) {
        self.keepalive.stop(&mut self.ctx);
        self.reg.unregister(&mut self.ctx, now);
    }

    /// Calls `target`: an extension (`111001`, sent as
    /// `sip:111001@domain`) or a full `sip:` URI. `sdp` is the offer.
    pub fn invite(&mut self, now: Instant, target: &str, sdp: &str) -> Result<CallHandle, UaError> {
        self.calls.invite(&mut self.ctx, now, target, sdp)
    }

    /// Answers an incoming call with 200 OK carrying `sdp`.
    pub fn answer(&mut self, now: Instant, call: CallHandle, sdp: &str) -> Result<(), UaError> {
        self.calls.get_mut(call)?.answer(&mut self.ctx, now, sdp)
    }

    /// Refuses an incoming call (486 Busy Here, 603 Decline, …).
    pub fn reject(
        &mut self,
        now: Instant,
        call: CallHandle,
        code: u16,
        reason: &str,
    ) -> Result<(), UaError> {
        self.calls
            .get_mut(call)?
            .reject(&mut self.ctx, now, code, reason)
    }

    /// Ends a call whatever its state: CANCEL while ringing out, 603 while
    /// ringing in, BYE once established.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) -> Result<(), UaError> {
        self.calls.get_mut(call)?.hangup(&mut self.ctx, now)
    }

    // ---- input -----------------------------------------------------------

    /// Feeds one received datagram. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match msg::parse_with_limit(data, self.ctx.cfg.max_message_size) {
            Ok(m) if m.is_request() => self.on_request(now, from, m),
            Ok(m) => self.on_response(now, m),
            Err(r) => {
                let Context { rng, out, .. } = &mut self.ctx;
                let answer = server::malformed(data, from, &r, || build::token(rng.as_mut(), 12))
                    .count(&mut out.stats.rejected, &mut out.stats.dropped);
                out.transmits.extend(answer);
            }
        }
    }

    /// A response: to the client transaction it matches, then to the part
    /// that transaction works for.
    fn on_response(&mut self, now: Instant, resp: Message) {
        let Some(code) = resp.status() else { return };
        let branch = resp
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let method = resp.cseq_method().to_string();
        let timers = self.ctx.cfg.timers;
        let ctx = &mut self.ctx;
        let Some(i) = ctx
            .clients
            .iter()
            .position(|c| c.tx.branch == branch && c.tx.method == method)
        else {
            if method == "INVITE" && (200..300).contains(&code) {
                self.calls.resend_ack(ctx, &resp);
            } else {
                ctx.out.stats.stray_responses += 1;
            }
            return;
        };
        let client = &mut ctx.clients[i];
        let outcome = client.tx.on_response(now, &timers, code);
        let (owner, dest) = (client.owner, client.tx.dest);
        if outcome == ClientOutcome::Absorb {
            if let Some(ack) = client.tx.ack.clone() {
                ctx.send(dest, ack);
            }
            return;
        }
        match owner {
            Owner::Register => {
                if self.reg.is_current(&branch) && self.reg.on_response(ctx, now, &resp) {
                    self.keepalive.start(ctx, now);
                }
            }
            Owner::Invite(id) => {
                let Ok(call) = self.calls.get_mut(id) else {
                    return;
                };
                if code >= 300 {
                    // The transaction acknowledges non-2xx finals itself.
                    if let Some(ack) = call.ack_for_failure(ctx, &resp) {
                        ctx.clients[i].tx.ack = Some(ack.clone());
                        ctx.send(dest, ack);
                    }
                }
                call.on_invite_response(ctx, now, &resp);
            }
            Owner::Cancel(_) => {}
            Owner::KeepAlive => {
                if code >= 200 {
                    if let Some(seen) = KeepAlive::seen_at(ctx, &resp) {
                        self.reg.seen_at(ctx, now, seen);
                    }
                }
            }
            Owner::Bye(id) => {
                if code >= 200 {
                    self.calls.end(ctx, now, id, EndedBy::Local);
                }
            }
        }
    }

    /// A request: retransmissions to their server transaction, then the
    /// checks every request gets (§8.2.1–8.2.3), then by method.
    fn on_request(&mut self, now: Instant, src: SocketAddr, req: Message) {
        let ctx = &mut self.ctx;
        let key = build::server_key(&req);
        let method = req.method().clone();
        // Retransmissions and ACKs for non-2xx finals belong to an existing
        // server transaction.
        match ctx.servers.arrival(now, &key, &method) {
            Arrival::Absorbed(resend) => return ctx.absorbed(resend),
            Arrival::AckAbsorbed => return,
            Arrival::New => {}
        }
        match method {
            Method::Known(rsip::Method::Ack) => return self.calls.on_ack(ctx, &req),
            Method::Known(rsip::Method::Cancel) => {
                return self.calls.on_cancel(ctx, now, src, &req)
            }
            _ => {}
        }
        let invite = method == Method::INVITE;
        ctx.servers
            .open(key, invite, build::response_dest(&req, src));
        if let Some(refusal) = refusal(&req, &method) {
            return ctx.respond_fresh(now, &req, src, refusal);
        }
        match method {
            Method::Known(rsip::Method::Invite) => self.calls.on_invite(ctx, now, src, req),
            Method::Known(rsip::Method::Bye)
            | Method::Known(rsip::Method::Update)
            | Method::Known(rsip::Method::Info) => self.calls.in_dialog(ctx, now, src, &req),
            Method::Known(rsip::Method::Options) => {
                let extra = vec![
                    h::Allow::new(ALLOW).into(),
                    h::Accept::new("application/sdp").into(),
                ];
                ctx.respond_fresh(now, &req, src, Reply::new(200, "OK").headers(extra));
            }
            _ => ctx.respond_fresh(now, &req, src, allowing(405, "Method Not Allowed")),
        }
    }

    // ---- time ------------------------------------------------------------

    /// Fires every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ctx = &mut self.ctx;
        for (owner, branch) in ctx.client_timers(now) {
            // A request of ours got no final answer in time.
            match owner {
                Owner::Register => {
                    if self.reg.is_current(&branch) {
                        self.reg.timed_out(ctx, now);
                    }
                }
                Owner::Invite(id) => {
                    if let Ok(c) = self.calls.get_mut(id) {
                        c.fail(ctx, now, 408, "Request Timeout");
                    }
                }
                Owner::Cancel(_) | Owner::KeepAlive => {}
                Owner::Bye(id) => self.calls.end(ctx, now, id, EndedBy::Local),
            }
        }
        let resend = ctx.servers.fire_all(now);
        ctx.out.stats.retransmissions += resend.len() as u64;
        ctx.out.transmits.extend(resend);
        self.calls.handle_timeout(ctx, now);
        for timer in ctx.timers.expired(now) {
            match timer {
                Timer::KeepAlive => self.keepalive.on_due(ctx, now, self.reg.is_registered()),
                Timer::RegisterRefresh => self.reg.on_refresh_due(ctx, now),
            }
        }
    }

    /// When [`UserAgent::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ctx = &self.ctx;
        ctx.clients
            .iter()
            .filter_map(|c| c.tx.deadline())
            .chain(ctx.servers.deadline())
            .chain(self.calls.next_timeout())
            .chain(ctx.timers.next_timeout())
            .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.out.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.ctx.out.events.pop_front()
    }
}

/// The refusal a new request gets before its method is looked at
/// (§8.2.1–8.2.2): a URI scheme other than SIP (416), an extension method
/// (501), an extension it requires that we lack (420; session timers we
/// have, as the side whose peer refreshes).
fn refusal(req: &Message, method: &Method) -> Option<Reply<'static>> {
    let scheme = req
        .request_uri()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if scheme != "sip" && scheme != "sips" {
        return Some(Reply::new(416, "Unsupported URI Scheme"));
    }
    if let Method::Extension(_) = method {
        return Some(allowing(501, "Not Implemented"));
    }
    let required: Vec<String> = req
        .headers("Require")
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case(TIMER))
        .collect();
    if required.is_empty() {
        return None;
    }
    let unsupported = vec![h::Unsupported::new(required.join(", ")).into()];
    Some(Reply::new(420, "Bad Extension").headers(unsupported))
}

/// A refusal naming the methods we allow.
fn allowing(code: u16, reason: &'static str) -> Reply<'static> {
    Reply::new(code, reason).header(h::Allow::new(ALLOW))
}
