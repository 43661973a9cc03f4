//! The INVITE we send (RFC 3261 §13.2, §17.1.1): the target's URI, the
//! INVITE with our offer, its answers (provisional, one retry with
//! credentials after 401/407, the 2xx and its ACK, the failures and their
//! ACK), and CANCEL, which waits for a provisional (§9.1).

use web_time::Instant;

use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use super::{Call, CallState, Direction, NewDialog, Outgoing, SentInvite};
use crate::build;
use crate::msg::Message;
use crate::sdp::Sdp;
use crate::ua::auth::Auth;
use crate::ua::config::ALLOW;
use crate::ua::context::{Context, Owner};
use crate::ua::event::{CallHandle, EndedBy, Event, UaError};

/// What an INVITE is built from.
struct InviteTarget {
    call_id: String,
    local_tag: String,
    cseq: u32,
    /// The Request-URI (the remote target) and the To URI.
    uri: String,
    remote_uri: String,
    body: String,
}

/// The URI a call to `target` goes to: an extension (`111001`, sent as
/// `sip:111001@domain`) or a full `sip:` URI.
pub(in crate::ua) fn target_uri(domain: &str, target: &str) -> Result<String, UaError> {
    let uri = if target.contains(':') {
        target.to_owned()
    } else if !target.is_empty()
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
    {
        format!("sip:{target}@{domain}")
    } else {
        return Err(UaError::BadTarget(target.to_owned()));
    };
    rsip::Uri::try_from(uri.as_str()).map_err(|_| UaError::BadTarget(uri.clone()))?;
    Ok(uri)
}

/// An INVITE for `t` (a fresh branch; credentials when `auth` is given),
/// and what CANCEL and the ACK of a failure need of it.
fn invite_request(
    ctx: &mut Context,
    t: InviteTarget,
    auth: Option<&mut Auth>,
) -> Result<(Vec<u8>, SentInvite), UaError> {
    let branch = ctx.new_branch();
    let via = ctx.via(&branch);
    let from = ctx.our_from(&t.local_tag);
    let contact = ctx.contact_header();
    let cnonce = ctx.token(16);
    let to = format!("<{}>", t.remote_uri);
    let mut headers: Vec<Header> = vec![
        h::Via::new(via.clone()).into(),
        h::From::new(from).into(),
        h::To::new(to.clone()).into(),
        h::CallId::new(t.call_id).into(),
        h::CSeq::new(format!("{} INVITE", t.cseq)).into(),
        h::Contact::new(contact).into(),
        h::Allow::new(ALLOW).into(),
        h::ContentType::new("application/sdp").into(),
    ];
    ctx.common_headers(&mut headers);
    if let Some(auth) = auth {
        let (user, password) = (&ctx.cfg.username, &ctx.cfg.password);
        headers.push(auth.header(user, password, "INVITE", &t.uri, &cnonce));
    }
    let bytes = build::request(rsip::Method::Invite, &t.uri, headers, t.body.as_bytes())?;
    let sent = SentInvite {
        uri: t.uri,
        via,
        cseq: t.cseq,
        branch,
        to,
    };
    Ok((bytes, sent))
}

impl Call {
    /// Call `id` to `uri` with the offer `sdp`: its INVITE sent.
    pub(in crate::ua) fn invite(
        ctx: &mut Context,
        now: Instant,
        id: CallHandle,
        uri: String,
        sdp: &str,
    ) -> Result<Call, UaError> {
        let call_id = format!("{}@myturn", ctx.token(20));
        let local_tag = ctx.token(12);
        let local_cseq = ctx.rng.next_u32() % 10_000 + 2;
        let target = InviteTarget {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            cseq: local_cseq,
            uri: uri.clone(),
            remote_uri: uri.clone(),
            body: sdp.to_owned(),
        };
        let (bytes, sent) = invite_request(ctx, target, None)?;
        let branch = sent.branch.clone();
        let dialog = NewDialog {
            call_id,
            local_tag,
            remote_tag: None,
            local_uri: ctx.aor(),
            remote_uri: uri.clone(),
            local_cseq,
            remote_cseq: None,
            remote_target: uri,
            route_set: Vec::new(),
        };
        let state = CallState::Calling(Outgoing {
            sent,
            auth_tries: 0,
        });
        let mut call = Call::new(id, Direction::Outgoing, dialog, state);
        call.local_sdp = Some(sdp.to_owned());
        let proxy = ctx.cfg.proxy;
        ctx.start_client(now, Owner::Invite(id), branch, "INVITE", bytes, proxy);
        Ok(call)
    }

    /// Sends the INVITE again, with credentials for `auth`'s challenge:
    /// the call is calling anew.
    fn send_invite_with(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        mut auth: Auth,
        auth_tries: u32,
    ) -> Result<(), UaError> {
        self.local_cseq += 1;
        let target = InviteTarget {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            cseq: self.local_cseq,
            uri: self.remote_target.clone(),
            remote_uri: self.remote_uri.clone(),
            body: self.local_sdp.clone().unwrap_or_default(),
        };
        let (bytes, sent) = invite_request(ctx, target, Some(&mut auth))?;
        let branch = sent.branch.clone();
        self.state = CallState::Calling(Outgoing { sent, auth_tries });
        let proxy = ctx.cfg.proxy;
        ctx.start_client(now, Owner::Invite(self.id), branch, "INVITE", bytes, proxy);
        Ok(())
    }

    /// Sends CANCEL for our INVITE (now or, with no provisional yet, once
    /// one comes: see [`Call::hangup`]).
    pub(super) fn send_cancel(&mut self, ctx: &mut Context, now: Instant) -> Result<(), UaError> {
        let from = ctx.our_from(&self.local_tag);
        let mut common = Vec::new();
        ctx.common_headers(&mut common);
        let proxy = ctx.cfg.proxy;
        let Some(sent) = self.state.outgoing().map(|o| o.sent.clone()) else {
            return Err(UaError::WrongState);
        };
        self.state.step(|s| match s {
            CallState::Calling(o)
            | CallState::CancelPending(o)
            | CallState::Early(o)
            | CallState::Cancelling(o) => CallState::Cancelling(o),
            other => other,
        });
        let mut headers: Vec<Header> = vec![
            h::Via::new(sent.via.clone()).into(),
            h::From::new(from).into(),
            h::To::new(sent.to.clone()).into(),
            h::CallId::new(self.call_id.clone()).into(),
            h::CSeq::new(format!("{} CANCEL", sent.cseq)).into(),
        ];
        headers.extend(common);
        let bytes = build::request(rsip::Method::Cancel, &sent.uri, headers, b"")?;
        // CANCEL has the INVITE's branch; its transaction is told apart by
        // method (a separate client transaction, §9.1).
        let owner = Owner::Cancel(self.id);
        ctx.start_client(now, owner, sent.branch, "CANCEL", bytes, proxy);
        Ok(())
    }

    /// ACK for a non-2xx final (§17.1.1.3): the INVITE's R-URI, top Via,
    /// From, Call-ID and CSeq number; the response's To.
    pub(in crate::ua) fn ack_for_failure(&self, ctx: &Context, resp: &Message) -> Option<Vec<u8>> {
        let from = ctx.our_from(&self.local_tag);
        let mut common = Vec::new();
        ctx.common_headers(&mut common);
        let sent = &self.state.outgoing()?.sent;
        let mut headers: Vec<Header> = vec![
            h::Via::new(sent.via.clone()).into(),
            h::From::new(from).into(),
            h::To::new(resp.header("To")?.to_owned()).into(),
            h::CallId::new(self.call_id.clone()).into(),
            h::CSeq::new(format!("{} ACK", sent.cseq)).into(),
        ];
        headers.extend(common);
        build::request(rsip::Method::Ack, &sent.uri, headers, b"").ok()
    }

    /// A response to our INVITE (its transaction acknowledged a failure
    /// already).
    pub(in crate::ua) fn on_invite_response(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        resp: &Message,
    ) {
        let code = resp.status().unwrap_or(0);
        if self.is_ended() && code < 200 {
            return;
        }
        match code {
            100 => {}
            101..=199 => self.on_invite_provisional(ctx, now, code),
            200..=299 => self.on_invite_ok(ctx, now, resp),
            401 | 407 => self.on_invite_challenge(ctx, now, code, resp),
            _ => self.fail(ctx, now, code, resp.reason()),
        }
    }

    /// 101–199 to our INVITE: early, ringing (the first provisional, and
    /// every 180), and the CANCEL that waited for it.
    fn on_invite_provisional(&mut self, ctx: &mut Context, now: Instant, code: u16) {
        let mut first = false;
        let mut cancel = false;
        self.state.step(|s| match s {
            CallState::Calling(o) => {
                first = true;
                CallState::Early(o)
            }
            CallState::CancelPending(o) => {
                cancel = true;
                CallState::Early(o)
            }
            other => other,
        });
        if cancel {
            let _ = self.send_cancel(ctx, now);
        } else if first || code == 180 {
            ctx.event(Event::Ringing { call: self.id });
        }
    }

    /// 401/407 to our INVITE: one retry with credentials, unless the call
    /// is being cancelled; a failure otherwise.
    fn on_invite_challenge(&mut self, ctx: &mut Context, now: Instant, code: u16, resp: &Message) {
        let tries = match &mut self.state {
            CallState::Calling(o) | CallState::Early(o) => {
                o.auth_tries += 1;
                Some(o.auth_tries)
            }
            CallState::CancelPending(o) | CallState::Cancelling(o) => {
                o.auth_tries += 1;
                None
            }
            _ => None,
        };
        match (Auth::from_challenge(resp), tries) {
            (Some(auth), Some(tries)) if tries <= 1 => {
                if self.send_invite_with(ctx, now, auth, tries).is_err() {
                    self.fail(ctx, now, code, resp.reason());
                }
            }
            _ => self.fail(ctx, now, code, resp.reason()),
        }
    }

    fn on_invite_ok(&mut self, ctx: &mut Context, now: Instant, resp: &Message) {
        let answer = Sdp::parse(resp.body()).ok();
        let remote_tag = resp.to().and_then(|t| t.tag().map(str::to_owned));
        let contact = resp.name_addrs("Contact").into_iter().next().map(|c| c.uri);
        // The UAC's route set is the Record-Route in reverse (§12.1.2).
        let mut routes: Vec<String> = resp.headers("Record-Route").map(str::to_owned).collect();
        routes.reverse();
        if matches!(
            self.state,
            CallState::Confirmed { .. } | CallState::Terminating { .. }
        ) {
            return;
        }
        let hang_up = matches!(
            self.state,
            CallState::CancelPending(_) | CallState::Cancelling(_) | CallState::Ended { .. }
        );
        self.remote_tag = remote_tag;
        if let Some(c) = contact {
            self.remote_target = c;
        }
        self.route_set = routes;
        let cseq = self
            .state
            .outgoing()
            .map(|o| o.sent.cseq)
            .unwrap_or(self.local_cseq);
        self.confirm(None);
        // ACK for 2xx: a new transaction-less request, new branch (§13.2.2.4).
        let branch = ctx.new_branch();
        if let Ok((bytes, dest)) = self.dialog_request(ctx, rsip::Method::Ack, cseq, &branch) {
            self.confirm(Some((bytes.clone(), dest)));
            ctx.send(dest, bytes);
        }
        if hang_up {
            // Answered after we gave up (CANCEL lost the race): end it.
            let _ = self.send_bye(ctx, now);
            return;
        }
        ctx.event(Event::Answered {
            call: self.id,
            sip_call_id: self.call_id.clone(),
            answer,
        });
    }

    /// Our INVITE failed (or, being cancelled, ended): the call is over.
    pub(in crate::ua) fn fail(&mut self, ctx: &mut Context, now: Instant, code: u16, reason: &str) {
        if self.is_ended() {
            return;
        }
        let cancelled = matches!(self.state, CallState::Cancelling(_));
        self.end(now, ctx);
        ctx.event(if cancelled {
            Event::CallEnded {
                call: self.id,
                by: EndedBy::Local,
            }
        } else {
            Event::CallFailed {
                call: self.id,
                code,
                reason: reason.to_owned(),
            }
        });
    }
}
