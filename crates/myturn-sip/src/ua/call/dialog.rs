//! What either side of a call does once its dialog exists (RFC 3261
//! §12, §14, §15): requests within it (ACK for 2xx, BYE) and where they
//! go, the peer's BYE, the peer's re-INVITE, UPDATE and INFO with their
//! offers answered, and session timers (RFC 4028) as the side that never
//! refreshes.

use std::time::Duration;

use web_time::Instant;

use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use super::{Call, CallState};
use crate::build::{self, Reply};
use crate::msg::Message;
use crate::sdp::Sdp;
use crate::ua::context::{Context, Owner};
use crate::ua::event::{EndedBy, Event, UaError};
use crate::ua::timer::CallTimer;

/// The session timer option tag (RFC 4028).
pub(in crate::ua) const TIMER: &str = "timer";

/// Session timers (RFC 4028) as the side that never refreshes: a request
/// with `Session-Expires` gets it back with `refresher=uac`, so its sender
/// (a PBX such as Asterisk) keeps sending the refreshes, which this agent
/// answers like any re-INVITE or UPDATE. `Require: timer` goes back only
/// to a sender that supports timers; without it the sender still refreshes
/// (§7.1: the refresher is the side that supports the extension).
pub(super) fn session_timer_headers(req: &Message) -> Vec<Header> {
    let Some(delta) = session_interval(req) else {
        return Vec::new();
    };
    let supports = ["Supported", "Require"].iter().any(|name| {
        req.headers(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(TIMER))
    });
    let mut out: Vec<Header> = vec![Header::Other(
        "Session-Expires".into(),
        format!("{delta};refresher=uac"),
    )];
    if supports {
        out.push(h::Require::new(TIMER).into());
    }
    out
}

/// The session interval a request asks for (`Session-Expires`, seconds).
fn session_interval(req: &Message) -> Option<u32> {
    req.header("Session-Expires")?
        .split(';')
        .next()
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|&d| d > 0)
}

/// When a session that `req` (re)starts counts as dead if no refresh
/// came: RFC 4028 §10, the side that does not refresh sends a BYE
/// `min(32, interval / 3)` seconds before the session expires. `None`
/// when `req` asks for no session timer.
pub(super) fn session_deadline(now: Instant, req: &Message) -> Option<Instant> {
    session_interval(req).map(|interval| {
        let d = Duration::from_secs(u64::from(interval));
        now + d - (d / 3).min(Duration::from_secs(32))
    })
}

/// Answers an in-dialog offer: our current SDP with the offer's payload
/// type (a back-to-back agent may renumber it), the `o=` version raised
/// when the body changes. Refused when the offer has no L16 at our rate.
fn answer_refresh(current: Option<&str>, offer: &[u8]) -> Result<(String, Sdp), String> {
    let offer = Sdp::parse(offer).map_err(|e| e.to_string())?;
    let Some(mut mine) = current.and_then(|c| Sdp::parse(c.as_bytes()).ok()) else {
        return Err("no local session description yet".into());
    };
    if offer.rate != mine.rate {
        return Err(format!(
            "offer is L16/{} but the call runs at {} Hz",
            offer.rate, mine.rate
        ));
    }
    // Opus stays in the answer only while the offer has it, under the
    // offer's number (what Opus means end to end is agreed in the sealed
    // handshake, not here).
    let opus = mine.opus.and(offer.opus);
    if offer.payload_type != mine.payload_type || opus != mine.opus {
        mine.payload_type = offer.payload_type;
        mine.opus = opus;
        mine.session.1 = mine.session.1.wrapping_add(1);
    }
    Ok((mine.render(), offer))
}

impl Call {
    /// The next hop for an in-dialog request: the first route, else the
    /// remote target, when they name an IP; the proxy otherwise.
    fn dialog_dest(&self, ctx: &Context) -> std::net::SocketAddr {
        self.route_set
            .first()
            .map(|r| r.as_str())
            .or(Some(self.remote_target.as_str()))
            .and_then(build::uri_addr)
            .unwrap_or(ctx.cfg.proxy)
    }

    /// A request within the dialog, and where it goes.
    pub(super) fn dialog_request(
        &self,
        ctx: &Context,
        method: rsip::Method,
        cseq: u32,
        branch: &str,
    ) -> Result<(Vec<u8>, std::net::SocketAddr), UaError> {
        let via = ctx.via(branch);
        let mut common = Vec::new();
        ctx.common_headers(&mut common);
        // In a dialog, From is our side of the dialog: the AOR we called
        // from, or the To of the INVITE we answered (§12.2.1.1).
        let from = ctx.our_from_as(self.local_uri.clone(), &self.local_tag);
        let mut to = format!("<{}>", self.remote_uri);
        if let Some(t) = &self.remote_tag {
            to.push_str(&format!(";tag={t}"));
        }
        let mut headers: Vec<Header> = vec![
            h::Via::new(via).into(),
            h::From::new(from).into(),
            h::To::new(to).into(),
            h::CallId::new(self.call_id.clone()).into(),
            h::CSeq::new(format!("{cseq} {method}")).into(),
        ];
        for r in &self.route_set {
            headers.push(h::Route::new(r.clone()).into());
        }
        headers.extend(common);
        let bytes = build::request(method, &self.remote_target, headers, b"")?;
        Ok((bytes, self.dialog_dest(ctx)))
    }

    /// Hangs up with a BYE: the call is terminating until its answer.
    pub(in crate::ua) fn send_bye(
        &mut self,
        ctx: &mut Context,
        now: Instant,
    ) -> Result<(), UaError> {
        let branch = ctx.new_branch();
        self.local_cseq += 1;
        self.terminate();
        let cseq = self.local_cseq;
        let (bytes, dest) = self.dialog_request(ctx, rsip::Method::Bye, cseq, &branch)?;
        ctx.start_client(now, Owner::Bye(self.id), branch, "BYE", bytes, dest);
        Ok(())
    }

    /// The peer's BYE: 200, and the call is over.
    pub(in crate::ua) fn on_bye(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        src: std::net::SocketAddr,
        req: &Message,
    ) {
        let tag = self.local_tag.clone();
        ctx.respond(now, req, src, Reply::new(200, "OK").tag(&tag));
        self.end_by(ctx, now, EndedBy::Remote);
    }

    /// A re-INVITE, UPDATE or INFO within the dialog: a new offer is
    /// answered with our current SDP (488, and the session unchanged, if
    /// it does not fit), an offerless re-INVITE gets our SDP as the offer;
    /// a `Session-Expires` restarts the session timer, its absence stops
    /// it (RFC 4028 §9).
    pub(in crate::ua) fn on_refresh(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        src: std::net::SocketAddr,
        req: &Message,
    ) {
        let contact = ctx.contact_header();
        if self.remote_cseq.is_some_and(|c| req.cseq() <= c) {
            let tag = self.local_tag.clone();
            return ctx.respond(
                now,
                req,
                src,
                Reply::new(500, "Server Internal Error (CSeq out of order)").tag(&tag),
            );
        }
        self.remote_cseq = Some(req.cseq());
        if let Some(c) = req.name_addrs("Contact").into_iter().next() {
            self.remote_target = c.uri;
        }
        let tag = self.local_tag.clone();
        let is_invite = req.method().is(rsip::Method::Invite);
        let offer = !req.body().is_empty() && !req.method().is(rsip::Method::Info);
        // The answer to a new offer (a session refresh, or a back-to-back
        // agent moving or renumbering media), or our current SDP as the
        // offer in the 200 to an offerless re-INVITE (the answer then
        // comes in the ACK).
        let body = if offer {
            match answer_refresh(self.local_sdp.as_deref(), req.body()) {
                Ok((body, sdp)) => {
                    self.local_sdp = Some(body.clone());
                    ctx.event(Event::RemoteMediaChanged { call: self.id, sdp });
                    body
                }
                // Not acceptable: the session goes on as it was (§14.2).
                Err(reason) => {
                    tracing::info!(%reason, "in-dialog offer refused with 488");
                    return ctx.respond(
                        now,
                        req,
                        src,
                        Reply::new(488, "Not Acceptable Here").tag(&tag),
                    );
                }
            }
        } else if is_invite {
            self.local_sdp.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let mut extra: Vec<Header> = vec![h::Contact::new(contact).into()];
        if !body.is_empty() {
            extra.push(h::ContentType::new("application/sdp").into());
        }
        extra.extend(session_timer_headers(req));
        // A refresh (re-INVITE or UPDATE with Session-Expires) restarts
        // the session timer; one without it turns the timer off (§9).
        self.timers
            .set_or_stop(CallTimer::SessionExpires, session_deadline(now, req));
        ctx.respond(
            now,
            req,
            src,
            Reply::new(200, "OK")
                .tag(&tag)
                .headers(extra)
                .body(body.as_bytes()),
        );
    }

    /// The session timer ran out without a refresh: the PBX (or the path
    /// to it) is gone. BYE, and say so.
    pub(in crate::ua) fn session_expired_bye(&mut self, ctx: &mut Context, now: Instant) {
        tracing::info!(
            call = self.id.0,
            "session timer expired without a refresh: hanging up"
        );
        let _ = self.send_bye(ctx, now);
        self.end_by(ctx, now, EndedBy::SessionExpired);
    }

    /// Whether the session timer ran out at `now` (it is then stopped)
    /// on a call that still has a session: one to hang up.
    pub(in crate::ua) fn session_expired(&mut self, now: Instant) -> bool {
        if !self.timers.is_expired(CallTimer::SessionExpires, now) {
            return false;
        }
        self.timers.stop(CallTimer::SessionExpires);
        matches!(
            self.state,
            CallState::Answered(_) | CallState::Confirmed { .. }
        )
    }
}
