//! The proxy (RFC 3261 §16): an INVITE to `EXTENSION@domain` goes to the
//! user owning the extension (407 first, like Asterisk's peers; 404 for
//! an unknown extension, 480 for a user not registered), with our
//! Record-Route so in-dialog requests pass through us.
//!
//! * Forwarded INVITEs are transaction-stateful: the caller's side is a
//!   server transaction (100 Trying at once), the callee's a client
//!   transaction with timers A (the INVITE again) and B (408 to the
//!   caller); non-2xx finals are ACKed hop by hop; CANCEL goes down once
//!   the callee has answered provisionally.
//! * In-dialog requests (ACK for 2xx, BYE, re-INVITE, …) and their
//!   responses are routed statelessly, by loose routing through us.
//! * Every message with SDP goes through media anchoring first
//!   ([`Anchoring::anchor`]); what it settles comes back to
//!   [`Proxy::settle`].
//!
//! The proxy asks the registrar who is calling and where the callee is,
//! and holds neither it nor the anchoring: the front lends both per call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use myturn_sip::build::{self, uri_addr, uri_user, Reply};
use myturn_sip::msg::{Message, Method};
use myturn_sip::server::Arrival;
use myturn_sip::transaction::{ClientOutcome, ClientState, ClientTx, TimerAction};
use myturn_sip::Transmit;

use crate::auth::{claimed_user, Role};
use crate::ctx::Ctx;
use crate::media::{Anchor, Anchoring, Exhausted, Settled, Then};
use crate::registrar::{Located, Registrar};
use crate::relay::Side;
use crate::report::Event;
use crate::rewrite::{self, forward_request, is_own_route, our_via, strip_top_via};
use crate::timer::Timer;

/// An INVITE we forward: the caller's side (a server transaction) and the
/// callee's (a client transaction), RFC 3261 §16.
#[derive(Debug)]
struct Forward {
    upstream_key: String,
    upstream_dest: SocketAddr,
    /// The INVITE as received (to answer it).
    request: Message,
    request_src: SocketAddr,
    client: ClientTx,
    /// The forwarded Request-URI and our Via, for CANCEL and ACK.
    ruri: String,
    our_via: String,
    provisional: bool,
    /// The INVITE waits for its SDP to be anchored: not sent yet.
    held: bool,
    cancel_pending: bool,
    final_sent: bool,
    /// Keep the mapping to relay 2xx retransmissions until then.
    forget_at: Option<Instant>,
}

impl Forward {
    fn deadline(&self) -> Option<Instant> {
        [self.client.deadline(), self.forget_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Forwarded INVITEs and our CANCELs.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// By our branch.
    forwards: HashMap<String, Forward>,
    /// Our CANCEL client transactions (absorb their 200).
    cancels: Vec<ClientTx>,
    /// The caller's INVITE server transaction key → our branch.
    upstream: HashMap<String, String>,
    /// Our Record-Route.
    rr: String,
}

impl Proxy {
    /// A proxy at `addr`.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Proxy {
            forwards: HashMap::new(),
            cancels: Vec::new(),
            upstream: HashMap::new(),
            rr: format!("<sip:{addr};lr>"),
        }
    }

    /// Puts forward `branch`'s current deadline in the timer table.
    fn arm(&self, cx: &mut Ctx<'_>, branch: String) {
        let at = self.forwards.get(&branch).and_then(Forward::deadline);
        cx.sh.timers.set(Timer::Forward(branch), at);
    }

    /// A new INVITE from `src` (its server transaction open).
    pub(crate) fn on_invite(
        &mut self,
        cx: &mut Ctx<'_>,
        registrar: &mut Registrar,
        media: &mut Anchoring,
        now: Instant,
        src: SocketAddr,
        req: Message,
    ) {
        let Some(caller) = registrar.admit(cx, now, &req, src, Role::Proxy) else {
            return;
        };
        if claimed_user(req.from()) != caller {
            return cx.respond(
                now,
                &req,
                src,
                Reply::new(403, "Forbidden (From is not you)"),
            );
        }
        let ext = uri_user(req.request_uri()).to_owned();
        let (callee, binding) = match registrar.locate(&ext) {
            Located::At(callee, binding) => (callee, binding),
            Located::Unknown => {
                cx.sh.stats.calls_not_found += 1;
                return cx.respond(now, &req, src, Reply::new(404, "Not Found"));
            }
            Located::Offline => {
                cx.sh.stats.calls_unavailable += 1;
                return cx.respond(now, &req, src, Reply::new(480, "Temporarily Unavailable"));
            }
        };
        // 100 Trying at once: the caller stops retransmitting (§16.2).
        cx.respond(now, &req, src, Reply::new(100, "Trying"));
        // Media anchoring first: with the relay full, a 503 and nothing
        // forwarded.
        let users = [caller.clone(), callee.clone()];
        let anchored = match media.open(&mut cx.sh.stats, now, &req, src, binding.source, users) {
            Ok(anchored) => anchored,
            Err(Exhausted) => {
                let extra = vec![rsip::Header::Other("Retry-After".into(), "5".into())];
                let reply = Reply::new(503, "Service Unavailable (media ports exhausted)");
                return cx.respond(now, &req, src, reply.headers(extra));
            }
        };

        let branch = format!("z9hG4bK{}", build::token(cx.rng, 18));
        let our_via = our_via(cx.cfg.addr, &branch);
        let bytes = forward_request(
            &req,
            src,
            cx.cfg.addr,
            &binding.contact,
            &our_via,
            Some(&self.rr),
        );
        let upstream_key = build::server_key(&req);
        let anchor = anchored.then(|| Anchor::of(&req, src, Side::Caller, true));
        let client = ClientTx::new(
            now,
            &cx.cfg.timers,
            branch.clone(),
            "INVITE",
            bytes.clone(),
            binding.source,
        );
        self.upstream.insert(upstream_key.clone(), branch.clone());
        let branch_key = branch.clone();
        self.forwards.insert(
            branch,
            Forward {
                upstream_key,
                upstream_dest: build::response_dest(&req, src),
                request: req,
                request_src: src,
                client,
                ruri: binding.contact,
                our_via,
                provisional: false,
                held: anchored,
                cancel_pending: false,
                final_sent: false,
                forget_at: None,
            },
        );
        self.arm(cx, branch_key.clone());
        cx.sh.stats.calls_routed += 1;
        tracing::info!(from = %caller, to = %callee, extension = %ext, "call routed");
        cx.sh.events.push_back(Event::CallRouted {
            from: caller,
            to: callee,
        });
        let then = Then::Invite { branch: branch_key };
        self.out(cx, media, now, bytes, anchor, then);
    }

    /// ACK for 2xx and in-dialog requests: loose routing through us,
    /// statelessly.
    pub(crate) fn route_in_dialog(
        &mut self,
        cx: &mut Ctx<'_>,
        registrar: &Registrar,
        media: &mut Anchoring,
        now: Instant,
        src: SocketAddr,
        req: &Message,
    ) {
        let addr = cx.cfg.addr;
        let own = |r: &str| is_own_route(addr, r);
        let routes: Vec<String> = req.headers("Route").map(str::to_owned).collect();
        let remaining: Vec<&String> = routes.iter().skip_while(|r| !own(r)).skip(1).collect();
        let next = match remaining.first() {
            Some(r) => uri_addr(r),
            // The Request-URI is a user's contact.
            None => registrar.source_of_contact(req.request_uri()),
        };
        let routed_via_us = routes.iter().any(|r| own(r));
        let Some(next) = next.filter(|_| routed_via_us) else {
            if req.method() != &Method::ACK {
                let key = build::server_key(req);
                cx.sh
                    .servers
                    .open(key, false, build::response_dest(req, src));
                cx.respond(
                    now,
                    req,
                    src,
                    Reply::new(481, "Call/Transaction Does Not Exist"),
                );
            }
            return;
        };
        let our_via = our_via(addr, &rewrite::stateless_branch(req));
        let bytes = forward_request(req, src, addr, req.request_uri(), &our_via, None);
        let anchor = media.in_dialog_anchor(req, src);
        self.out(cx, media, now, bytes, anchor, Then::Send { dest: next });
        if req.method() == &Method::BYE {
            media.close(req.call_id(), "BYE");
        }
    }

    /// A CANCEL from the caller: answered at once, and passed down once
    /// the callee has answered provisionally.
    pub(crate) fn on_cancel(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        src: SocketAddr,
        req: &Message,
    ) {
        let invite_key = build::server_key(req);
        let cancel_key = format!("{invite_key}|CANCEL");
        if let Some(Arrival::Absorbed(resend)) = cx.sh.servers.absorb(&cancel_key) {
            return cx.sh.absorbed(resend);
        }
        let dest = build::response_dest(req, src);
        cx.sh.servers.open(cancel_key.clone(), false, dest);
        let found = self.upstream.get(&invite_key).cloned();
        let (code, reason) = if found.is_some() {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let tag = cx.tag();
        let bytes = Reply::new(code, reason).tag(&tag).for_source(req, src);
        cx.sh.answer(now, cancel_key, code, bytes, dest);
        let Some(branch) = found else { return };
        let Some(fwd) = self.forwards.get_mut(&branch) else {
            return;
        };
        if fwd.final_sent {
            return;
        }
        if fwd.provisional {
            self.send_cancel_downstream(cx, now, &branch);
        } else {
            fwd.cancel_pending = true;
        }
    }

    fn send_cancel_downstream(&mut self, cx: &mut Ctx<'_>, now: Instant, branch: &str) {
        let Some(fwd) = self.forwards.get_mut(branch) else {
            return;
        };
        fwd.cancel_pending = false;
        let Some(bytes) = rewrite::cancel(&fwd.request, &fwd.ruri, &fwd.our_via) else {
            return;
        };
        let dest = fwd.client.dest;
        let tx = ClientTx::new(
            now,
            &cx.cfg.timers,
            branch.to_owned(),
            "CANCEL",
            bytes.clone(),
            dest,
        );
        self.cancels.push(tx);
        cx.sh.send(dest, bytes);
    }

    /// A response from downstream.
    pub(crate) fn on_response(
        &mut self,
        cx: &mut Ctx<'_>,
        media: &mut Anchoring,
        now: Instant,
        src: SocketAddr,
        resp: Message,
    ) {
        let Some(code) = resp.status() else { return };
        let vias = resp.vias();
        let Some(top) = vias.first() else { return };
        let addr = cx.cfg.addr;
        if build::via_dest(top) != Some(addr) && top.sent_by() != addr.to_string() {
            cx.sh.stats.dropped += 1;
            return; // not ours to relay
        }
        let branch = top.branch().unwrap_or_default().to_owned();
        let method = resp.cseq_method().clone();
        let timers = cx.cfg.timers;
        if method == Method::CANCEL {
            if let Some(tx) = self.cancels.iter_mut().find(|t| t.branch == branch) {
                tx.on_response(now, &timers, code);
            }
            return;
        }
        if method == Method::INVITE {
            if let Some(up) = self.forwards.get(&branch).map(|f| f.upstream_key.clone()) {
                self.on_forward_response(cx, media, now, src, &branch, code, &resp);
                self.arm(cx, branch);
                cx.sh.arm_server(up);
                return;
            }
        }
        // Stateless relay (in-dialog requests' responses): pop our Via.
        match vias.get(1).and_then(build::via_dest) {
            Some(next) => {
                let bytes = strip_top_via(&resp);
                let anchor = media.in_dialog_anchor(&resp, src);
                self.out(cx, media, now, bytes, anchor, Then::Send { dest: next });
            }
            None => cx.sh.stats.dropped += 1,
        }
    }

    /// Passes a response from the callee (at `src`) up without our Via,
    /// its SDP anchored.
    fn pass_up(
        &mut self,
        cx: &mut Ctx<'_>,
        media: &mut Anchoring,
        now: Instant,
        resp: &Message,
        src: SocketAddr,
        then: Then,
    ) {
        let bytes = strip_top_via(resp);
        let anchor = media.response_anchor(resp, src);
        self.out(cx, media, now, bytes, anchor, then);
    }

    /// A response to an INVITE we forwarded (RFC 3261 §16.7).
    #[allow(clippy::too_many_arguments)]
    fn on_forward_response(
        &mut self,
        cx: &mut Ctx<'_>,
        media: &mut Anchoring,
        now: Instant,
        src: SocketAddr,
        branch: &str,
        code: u16,
        resp: &Message,
    ) {
        let timers = cx.cfg.timers;
        let Some(fwd) = self.forwards.get_mut(branch) else {
            return;
        };
        let outcome = fwd.client.on_response(now, &timers, code);
        // Where whatever goes up goes: the caller, through its server
        // transaction.
        let up = Then::Upstream {
            key: fwd.upstream_key.clone(),
            dest: fwd.upstream_dest,
            code,
        };
        if (200..300).contains(&code) {
            // 2xx, first or retransmitted, goes up statelessly.
            fwd.final_sent = true;
            fwd.forget_at.get_or_insert(now + timers.t64());
            return self.pass_up(cx, media, now, resp, src, up);
        }
        match outcome {
            ClientOutcome::Absorb => {
                if let Some(ack) = fwd.client.ack.clone() {
                    cx.sh.send(fwd.client.dest, ack);
                }
            }
            ClientOutcome::Deliver if code < 200 => {
                fwd.provisional = true;
                let pending = fwd.cancel_pending;
                if code > 100 {
                    self.pass_up(cx, media, now, resp, src, up);
                }
                if pending {
                    self.send_cancel_downstream(cx, now, branch);
                }
            }
            ClientOutcome::Deliver => {
                // Non-2xx final: ACK it hop by hop, pass it up.
                let ack = rewrite::hop_ack(resp, &fwd.ruri, &fwd.our_via);
                if let Some(ack) = &ack {
                    fwd.client.ack = Some(ack.clone());
                }
                fwd.final_sent = true;
                fwd.forget_at.get_or_insert(now + timers.t64());
                let dest = fwd.client.dest;
                if let Some(ack) = ack {
                    cx.sh.send(dest, ack);
                }
                let bytes = strip_top_via(resp);
                self.finish(cx, now, bytes, up);
                media.close(resp.call_id(), "call failed");
            }
            ClientOutcome::Timeout => {}
        }
    }

    /// Sends `bytes` as `then` says, once the SDP it carries (if `anchor`)
    /// points at the relay.
    fn out(
        &mut self,
        cx: &mut Ctx<'_>,
        media: &mut Anchoring,
        now: Instant,
        bytes: Vec<u8>,
        anchor: Option<Anchor>,
        then: Then,
    ) {
        if let Some(settled) = media.anchor(now, bytes, anchor, then) {
            self.settle(cx, media, now, settled);
        }
    }

    /// A message whose SDP anchoring is over: sent on, or (anchoring
    /// failed) a new call refused — 488 for an SDP we cannot relay, 503
    /// when rtpengine failed — and anything else passed unchanged, since
    /// its dialog exists already.
    pub(crate) fn settle(
        &mut self,
        cx: &mut Ctx<'_>,
        media: &mut Anchoring,
        now: Instant,
        settled: Settled,
    ) {
        let held = match settled {
            Settled::Ready(bytes, then) => return self.finish(cx, now, bytes, then),
            Settled::Failed(held) => held,
        };
        cx.sh.stats.media_failures += 1;
        match held.then {
            Then::Invite { branch } => {
                let Some(fwd) = self.forwards.remove(&branch) else {
                    return;
                };
                self.upstream.remove(&fwd.upstream_key);
                let (code, reason) = media.refusal();
                cx.respond(now, &fwd.request, fwd.request_src, Reply::new(code, reason));
                media.close(&held.call_id, "refused");
            }
            other => {
                tracing::warn!(call_id = %held.call_id, "media not anchored: message passed unchanged");
                self.finish(cx, now, held.bytes, other);
            }
        }
    }

    /// Sends a message whose SDP is settled.
    fn finish(&mut self, cx: &mut Ctx<'_>, now: Instant, bytes: Vec<u8>, then: Then) {
        match then {
            Then::Send { dest } => cx.sh.send(dest, bytes),
            Then::Upstream { key, dest, code } => cx.sh.answer(now, key, code, bytes, dest),
            Then::Invite { branch } => {
                let Some(fwd) = self.forwards.get_mut(&branch) else {
                    return;
                };
                fwd.held = false;
                fwd.client.request = bytes.clone();
                cx.sh.send(fwd.client.dest, bytes);
            }
        }
    }

    /// A forwarded INVITE's timer: its mapping forgotten, timer A (the
    /// INVITE again) or timer B (408 to the caller).
    pub(crate) fn on_timer(
        &mut self,
        cx: &mut Ctx<'_>,
        media: &mut Anchoring,
        now: Instant,
        branch: String,
    ) {
        let timers = cx.cfg.timers;
        let Some(f) = self.forwards.get_mut(&branch) else {
            return;
        };
        if f.forget_at.is_some_and(|t| t <= now) {
            let f = self.forwards.remove(&branch);
            if let Some(f) = f {
                self.upstream.remove(&f.upstream_key);
            }
            return;
        }
        if f.client.deadline().is_none_or(|d| d > now) {
            return self.arm(cx, branch);
        }
        match f.client.on_timeout(now, &timers) {
            // Timer A: the INVITE again, to the callee (unless it still
            // waits for its SDP to be anchored).
            Some(TimerAction::Retransmit) if !f.held => {
                let (d, b) = (f.client.dest, f.client.request.clone());
                cx.sh.send(d, b);
            }
            // Timer B: 408 to the caller.
            Some(TimerAction::Timeout) if !f.final_sent => {
                f.final_sent = true;
                f.forget_at = Some(now + timers.t64());
                let (req, src) = (f.request.clone(), f.request_src);
                cx.respond(now, &req, src, Reply::new(408, "Request Timeout"));
                media.close(req.call_id(), "no answer");
            }
            _ => {}
        }
        self.arm(cx, branch);
    }

    /// Our CANCELs: retransmitted until answered (timer E), then gone.
    pub(crate) fn handle_timeout(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        let timers = cx.cfg.timers;
        for c in &mut self.cancels {
            if c.on_timeout(now, &timers) == Some(TimerAction::Retransmit) {
                cx.sh.transmits.push_back(Transmit {
                    dest: c.dest,
                    payload: c.request.clone(),
                });
            }
        }
        self.cancels.retain(|c| c.state != ClientState::Terminated);
    }

    /// When our CANCELs next need [`Proxy::handle_timeout`].
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.cancels.iter().filter_map(ClientTx::deadline).min()
    }
}
