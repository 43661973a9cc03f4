//! The agent's calls as a set: handing out handles, finding the call a
//! message belongs to (by handle, dialog, ringing INVITE or Call-ID), the
//! checks that look across calls (merged requests, §8.2.2.2), the answers
//! for a request no call owns, and the calls' timers, fired in one pass.

use std::net::SocketAddr;
use web_time::Instant;

use super::call::uac::target_uri;
use super::call::uas::check_offer;
use super::call::{Call, Direction, Due2xx};
use super::context::Context;
use super::event::{CallHandle, EndedBy, UaError};
use crate::build::{self, Reply};
use crate::msg::Message;
use crate::server::Arrival;

/// Every call the agent has, until forgotten.
#[derive(Debug)]
pub(super) struct Calls {
    list: Vec<Call>,
    next: u64,
}

impl Calls {
    pub(super) fn new() -> Self {
        Calls {
            list: Vec::new(),
            next: 1,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn get(&self, id: CallHandle) -> Option<&Call> {
        self.list.iter().find(|c| c.id == id)
    }

    pub(super) fn get_mut(&mut self, id: CallHandle) -> Result<&mut Call, UaError> {
        self.list
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or(UaError::NoSuchCall)
    }

    fn next_handle(&mut self) -> CallHandle {
        let id = CallHandle(self.next);
        self.next += 1;
        id
    }

    /// Calls `target` (an extension or a `sip:` URI) with the offer `sdp`.
    pub(super) fn invite(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        target: &str,
        sdp: &str,
    ) -> Result<CallHandle, UaError> {
        let uri = target_uri(&ctx.cfg.domain, target)?;
        let id = self.next_handle();
        let call = Call::invite(ctx, now, id, uri, sdp)?;
        self.list.push(call);
        Ok(id)
    }

    /// Ends call `id` (said even of one already forgotten).
    pub(super) fn end(&mut self, ctx: &mut Context, now: Instant, id: CallHandle, by: EndedBy) {
        match self.get_mut(id) {
            Ok(c) => c.end_by(ctx, now, by),
            Err(_) => ctx.event(super::event::Event::CallEnded { call: id, by }),
        }
    }

    // ---- requests --------------------------------------------------------

    /// The dialog an in-dialog request belongs to: Call-ID, our tag in To,
    /// theirs in From.
    fn dialog_of(&mut self, req: &Message) -> Option<&mut Call> {
        let to_tag = req.to().and_then(|t| t.tag().map(str::to_owned))?;
        let from_tag = req.from().and_then(|f| f.tag().map(str::to_owned));
        self.list.iter_mut().find(|c| {
            c.call_id == req.call_id() && c.local_tag == to_tag && c.remote_tag == from_tag
        })
    }

    /// An INVITE: a re-INVITE within a dialog, or a new call (ringing, or
    /// refused).
    pub(super) fn on_invite(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        src: SocketAddr,
        req: Message,
    ) {
        let has_to_tag = req.to().is_some_and(|t| t.tag().is_some());
        if has_to_tag {
            // A re-INVITE (Asterisk sends them, e.g. for direct media):
            // take the new offer, answer with our current SDP.
            return self.in_dialog(ctx, now, src, &req);
        }
        let tag = ctx.token(12);
        match self.check_invite(&req) {
            Ok(offer) => {
                let Some(from) = req.from() else { return };
                let id = self.next_handle();
                let call = Call::ring(ctx, now, id, src, &req, from, tag, offer);
                self.list.push(call);
            }
            Err(refusal) => ctx.respond(now, &req, src, refusal.tag(&tag)),
        }
    }

    /// What a new INVITE must pass before it rings: not a merged request
    /// (§8.2.2.2: same Call-ID, From tag and CSeq as a call we have,
    /// arriving on another branch), then [`check_offer`].
    fn check_invite(&self, req: &Message) -> Result<Option<crate::sdp::Sdp>, Reply<'static>> {
        let from_tag = req.from().and_then(|f| f.tag().map(str::to_owned));
        if self.list.iter().any(|c| {
            c.direction == Direction::Incoming
                && c.call_id == req.call_id()
                && c.remote_tag == from_tag
                && c.remote_cseq == Some(req.cseq())
        }) {
            return Err(Reply::new(482, "Loop Detected"));
        }
        check_offer(req)
    }

    /// A BYE, re-INVITE, UPDATE or INFO: its dialog's, or 481.
    pub(super) fn in_dialog(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        src: SocketAddr,
        req: &Message,
    ) {
        let Some(call) = self.dialog_of(req) else {
            return ctx.respond_fresh(
                now,
                req,
                src,
                Reply::new(481, "Call/Transaction Does Not Exist"),
            );
        };
        if req.method().is(rsip::Method::Bye) {
            call.on_bye(ctx, now, src, req);
        } else {
            call.on_refresh(ctx, now, src, req);
        }
    }

    /// An ACK opening no transaction: its dialog's, or nobody's.
    pub(super) fn on_ack(&mut self, ctx: &mut Context, req: &Message) {
        if let Some(call) = self.dialog_of(req) {
            call.on_ack(ctx, req);
        }
    }

    /// A CANCEL, in its own (non-INVITE) server transaction: for the call
    /// ringing for its INVITE, or 481.
    pub(super) fn on_cancel(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        src: SocketAddr,
        req: &Message,
    ) {
        let invite_key = build::server_key(req);
        let ringing = self.list.iter().position(|c| c.rings_for(&invite_key));
        let cancel_key = format!("{invite_key}|CANCEL");
        if let Some(Arrival::Absorbed(resend)) = ctx.servers.absorb(&cancel_key) {
            return ctx.absorbed(resend);
        }
        let dest = build::response_dest(req, src);
        ctx.servers.open(cancel_key.clone(), false, dest);
        let Some(i) = ringing else {
            let tag = ctx.token(12);
            let reply = Reply::new(481, "Call/Transaction Does Not Exist").tag(&tag);
            return ctx.respond_in(now, &cancel_key, 481, reply.for_request(req), dest);
        };
        self.list[i].on_cancel(ctx, now, req, &cancel_key, dest);
    }

    // ---- responses -------------------------------------------------------

    /// A 2xx retransmission after the INVITE transaction ended: the UA
    /// core acknowledges it again (§13.2.2.4), or it is stray.
    pub(super) fn resend_ack(&self, ctx: &mut Context, resp: &Message) {
        let call_id = resp.call_id();
        let tag = resp.from().and_then(|f| f.tag().map(str::to_owned));
        if let Some((bytes, dest)) = self
            .list
            .iter()
            .find(|c| c.call_id == call_id && Some(&c.local_tag) == tag.as_ref())
            .and_then(|c| c.ack().cloned())
        {
            ctx.out.stats.retransmissions += 1;
            ctx.send(dest, bytes);
        } else {
            ctx.out.stats.stray_responses += 1;
        }
    }

    // ---- time ------------------------------------------------------------

    /// Fires the calls' due timers, each kind across all calls in turn:
    /// our 2xx retransmitted (or, unacknowledged for 64·T1, BYE), ended
    /// calls forgotten, session timers run out (BYE).
    pub(super) fn handle_timeout(&mut self, ctx: &mut Context, now: Instant) {
        let t2 = ctx.cfg.timers.t2;
        let mut give_up = Vec::new();
        let mut resend = Vec::new();
        for c in &mut self.list {
            match c.due_2xx(now, t2) {
                Some(Due2xx::GiveUp) => give_up.push(c.id),
                Some(Due2xx::Resend(t)) => resend.push(t),
                None => {}
            }
        }
        ctx.out.stats.retransmissions += resend.len() as u64;
        ctx.out.transmits.extend(resend);
        for id in give_up {
            if let Ok(c) = self.get_mut(id) {
                let _ = c.send_bye(ctx, now);
            }
        }
        self.list.retain(|c| !c.forgotten(now));
        let expired: Vec<CallHandle> = self
            .list
            .iter_mut()
            .filter_map(|c| c.session_expired(now).then_some(c.id))
            .collect();
        for id in expired {
            if let Ok(c) = self.get_mut(id) {
                c.session_expired_bye(ctx, now);
            }
        }
    }

    /// The calls' earliest deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.list.iter().filter_map(Call::next_timeout).min()
    }
}
