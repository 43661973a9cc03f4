//! The INVITE we answer (RFC 3261 §13.3, §17.2.1): what a new INVITE
//! must pass to ring, ringing (180), answering (2xx, retransmitted until
//! the ACK) or refusing, the ACK, and the peer's CANCEL (§9.2).

use std::net::SocketAddr;
use web_time::Instant;

use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use super::dialog::{session_deadline, session_timer_headers};
use super::{Call, CallState, Direction, NewDialog};
use crate::build::{self, Reply};
use crate::msg::{Message, NameAddr};
use crate::sdp::Sdp;
use crate::ua::config::ALLOW;
use crate::ua::context::Context;
use crate::ua::event::{CallHandle, EndedBy, Event, UaError};
use crate::ua::timer::CallTimer;

/// What a new INVITE must pass, beyond not being a merged request
/// (§8.2.2.2), before it rings: an SDP body (§8.2.3) we can read, an
/// answer type the sender accepts. The offer, or the refusal to send.
pub(in crate::ua) fn check_offer(req: &Message) -> Result<Option<Sdp>, Reply<'static>> {
    let content_type = req.header("Content-Type").unwrap_or("application/sdp");
    if !req.body().is_empty() && !content_type.trim().eq_ignore_ascii_case("application/sdp") {
        return Err(
            Reply::new(415, "Unsupported Media Type").header(h::Accept::new("application/sdp"))
        );
    }
    if let Some(accept) = req.header("Accept") {
        let ok = accept.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or_default().trim();
            t.eq_ignore_ascii_case("application/sdp")
                || t == "*/*"
                || t.eq_ignore_ascii_case("application/*")
        });
        if !ok {
            return Err(Reply::new(406, "Not Acceptable"));
        }
    }
    if req.body().is_empty() {
        return Ok(None);
    }
    match Sdp::parse(req.body()) {
        Ok(s) => Ok(Some(s)),
        Err(e) => Err(Reply::new(488, format!("Not Acceptable Here ({e})"))),
    }
}

impl Call {
    /// Call `id` from `req` (whose From is `from`), tagged `tag`: kept as
    /// ringing, 180 sent, the application told.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::ua) fn ring(
        ctx: &mut Context,
        now: Instant,
        id: CallHandle,
        src: SocketAddr,
        req: &Message,
        from: &NameAddr,
        tag: String,
        offer: Option<Sdp>,
    ) -> Call {
        let contact = req
            .name_addrs("Contact")
            .into_iter()
            .next()
            .map(|c| c.uri)
            .unwrap_or_else(|| from.uri.clone());
        let dialog = NewDialog {
            call_id: req.call_id().to_owned(),
            local_tag: tag.clone(),
            remote_tag: from.tag().map(str::to_owned),
            local_uri: req.to().map(|t| t.uri.clone()).unwrap_or_default(),
            remote_uri: from.uri.clone(),
            local_cseq: ctx.rng.next_u32() % 10_000 + 1,
            remote_cseq: Some(req.cseq()),
            remote_target: contact,
            // The UAS's route set is Record-Route in order (§12.1.1).
            route_set: req.headers("Record-Route").map(str::to_owned).collect(),
        };
        let state = CallState::Ringing {
            invite: Box::new(req.clone()),
            src,
        };
        let call = Call::new(id, Direction::Incoming, dialog, state);
        let contact = h::Contact::new(ctx.contact_header());
        ctx.respond(
            now,
            req,
            src,
            Reply::new(180, "Ringing").tag(&tag).header(contact),
        );
        ctx.event(Event::IncomingCall {
            call: id,
            sip_call_id: req.call_id().to_owned(),
            from_user: build::uri_user(&from.uri).to_owned(),
            from_display: from.display.clone(),
            offer,
        });
        call
    }

    /// Answers the ringing call with 200 OK carrying `sdp`.
    pub(in crate::ua) fn answer(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        sdp: &str,
    ) -> Result<(), UaError> {
        let contact = ctx.contact_header();
        let CallState::Ringing { invite, src } = &self.state else {
            return Err(UaError::WrongState);
        };
        let (invite, src) = (invite.clone(), *src);
        self.local_sdp = Some(sdp.to_owned());
        self.timers
            .set_or_stop(CallTimer::SessionExpires, session_deadline(now, &invite));
        let tag = self.local_tag.clone();
        let mut extra: Vec<Header> = vec![
            h::Contact::new(contact).into(),
            h::Allow::new(ALLOW).into(),
            h::ContentType::new("application/sdp").into(),
        ];
        for rr in invite.headers("Record-Route") {
            extra.push(h::RecordRoute::new(rr.to_owned()).into());
        }
        extra.extend(session_timer_headers(&invite));
        let bytes = Reply::new(200, "OK")
            .tag(&tag)
            .headers(extra)
            .body(sdp.as_bytes())
            .for_request(&invite);
        let dest = build::response_dest(&invite, src);
        self.answered(now, ctx, bytes.clone(), dest);
        ctx.respond_in(now, &build::server_key(&invite), 200, bytes, dest);
        Ok(())
    }

    /// Refuses the ringing call (486 Busy Here, 603 Decline, …).
    pub(in crate::ua) fn reject(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        code: u16,
        reason: &str,
    ) -> Result<(), UaError> {
        let CallState::Ringing { invite, src } = &self.state else {
            return Err(UaError::WrongState);
        };
        if !(300..700).contains(&code) {
            return Err(UaError::WrongState);
        }
        let (invite, src) = (invite.clone(), *src);
        let tag = self.local_tag.clone();
        self.end(now, ctx);
        ctx.respond(now, &invite, src, Reply::new(code, reason).tag(&tag));
        Ok(())
    }

    /// An ACK in the dialog: for our 2xx (the call is confirmed), or
    /// carrying the answer to the offer we put in the 200 to an
    /// offerless re-INVITE.
    pub(in crate::ua) fn on_ack(&mut self, ctx: &mut Context, req: &Message) {
        if let CallState::Answered(_) = self.state {
            self.confirm(None);
            let answer = Sdp::parse(req.body()).ok();
            ctx.event(Event::Confirmed {
                call: self.id,
                answer,
            });
        } else if let Ok(sdp) = Sdp::parse(req.body()) {
            ctx.event(Event::RemoteMediaChanged { call: self.id, sdp });
        }
    }

    /// The peer's CANCEL of the INVITE this call rings for: 200 to it in
    /// its transaction `cancel_key`, 487 to the INVITE, the call over.
    pub(in crate::ua) fn on_cancel(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        req: &Message,
        cancel_key: &str,
        dest: SocketAddr,
    ) {
        let tag = self.local_tag.clone();
        let bytes = Reply::new(200, "OK").tag(&tag).for_request(req);
        ctx.respond_in(now, cancel_key, 200, bytes, dest);
        if let CallState::Ringing { invite, src } = &self.state {
            let (inv, isrc) = (invite.clone(), *src);
            ctx.respond(
                now,
                &inv,
                isrc,
                Reply::new(487, "Request Terminated").tag(&tag),
            );
        }
        self.end_by(ctx, now, EndedBy::Remote);
    }
}
