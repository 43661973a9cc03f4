//! The NAT keep-alive (RFC 5626 §4.4, RFC 3581): while registered, an
//! OPTIONS to the proxy every so often, outside any dialog, keeps the
//! binding towards it open; its answer says where the proxy sees us.

use std::net::SocketAddr;
use std::time::Duration;

use web_time::Instant;

use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use super::context::{Context, Owner};
use super::timer::Timer;
use crate::build;
use crate::msg::Message;

/// The keep-alive: its interval; its deadline is [`Timer::KeepAlive`].
#[derive(Debug)]
pub(super) struct KeepAlive {
    every: Option<Duration>,
}

impl KeepAlive {
    /// A keep-alive every `every` (`None`: never).
    pub(super) fn new(every: Option<Duration>) -> Self {
        KeepAlive { every }
    }

    /// (Re)starts the count to the next keep-alive.
    pub(super) fn start(&self, ctx: &mut Context, now: Instant) {
        ctx.timers
            .set_or_stop(Timer::KeepAlive, self.every.map(|k| now + k));
    }

    /// No keep-alive until started again.
    pub(super) fn stop(&self, ctx: &mut Context) {
        ctx.timers.stop(Timer::KeepAlive);
    }

    /// [`Timer::KeepAlive`] is due: send one and count to the next while
    /// `registered`; stop otherwise.
    pub(super) fn on_due(&self, ctx: &mut Context, now: Instant, registered: bool) {
        if registered {
            self.start(ctx, now);
            Self::send(ctx, now);
        } else {
            self.stop(ctx);
        }
    }

    fn send(ctx: &mut Context, now: Instant) {
        let branch = ctx.new_branch();
        let uri = format!("sip:{}", ctx.cfg.domain);
        let tag = ctx.token(10);
        let call_id = format!("{}@myturn", ctx.token(16));
        let mut headers: Vec<Header> = vec![
            h::Via::new(ctx.via(&branch)).into(),
            h::From::new(ctx.our_from(&tag)).into(),
            h::To::new(format!("<{uri}>")).into(),
            h::CallId::new(call_id).into(),
            h::CSeq::new("1 OPTIONS").into(),
        ];
        ctx.common_headers(&mut headers);
        let Ok(bytes) = build::request(rsip::Method::Options, &uri, headers, b"") else {
            return;
        };
        let proxy = ctx.cfg.proxy;
        ctx.start_client(now, Owner::KeepAlive, branch, "OPTIONS", bytes, proxy);
    }

    /// A final answer to a keep-alive: where the proxy saw it come from.
    pub(super) fn seen_at(ctx: &Context, resp: &Message) -> Option<SocketAddr> {
        ctx.learnt(resp)
    }
}
