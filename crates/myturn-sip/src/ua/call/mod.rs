//! One call: its dialog (Call-ID, tags, URIs, CSeqs, target, route set),
//! where it is (each state with the data valid in it, as the media
//! session's state is) and its timers, which the moves between states keep
//! in step. What a call does is split by side: [`uac`] for the INVITE we
//! send, [`uas`] for the INVITE we answer, [`dialog`] for what either side
//! does once the dialog exists.

pub(super) mod dialog;
pub(super) mod uac;
pub(super) mod uas;

use std::net::SocketAddr;
use std::time::Duration;

use web_time::Instant;

use super::context::Context;
use super::event::{CallHandle, EndedBy, Event, UaError};
use super::timer::{CallTimer, CallTimers};
use crate::msg::Message;
use crate::Transmit;

/// Who sent the INVITE that made a call: fixed for the call's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Incoming,
    Outgoing,
}

/// The INVITE we sent, kept to build CANCEL and ACK-for-non-2xx.
#[derive(Debug, Clone)]
struct SentInvite {
    uri: String,
    via: String,
    cseq: u32,
    branch: String,
    to: String,
}

/// An outgoing call until its INVITE's final answer: the INVITE (for
/// CANCEL and the ACK of a failure) and the challenges answered so far.
#[derive(Debug)]
struct Outgoing {
    sent: SentInvite,
    auth_tries: u32,
}

/// A 2xx we retransmit until ACK (§13.3.1.4); when is in the call's
/// [`CallTimer::Retransmit2xx`] and [`CallTimer::AckTimeout`].
#[derive(Debug, Clone)]
struct OkRetransmit {
    bytes: Vec<u8>,
    dest: SocketAddr,
    interval: Duration,
}

/// What an unacknowledged 2xx needs.
#[derive(Debug)]
pub(in crate::ua) enum Due2xx {
    /// Sending again.
    Resend(Transmit),
    /// No ACK came: hang up.
    GiveUp,
}

/// Our ACK for the 2xx of an outgoing call and where it went: sent again
/// when the 2xx is (§13.2.2.4).
type Ack = (Vec<u8>, SocketAddr);

/// Where a call is.
#[derive(Debug)]
enum CallState {
    /// Outgoing INVITE sent, no provisional.
    Calling(Outgoing),
    /// Outgoing, hang-up asked before any provisional: CANCEL must wait
    /// for one (§9.1).
    CancelPending(Outgoing),
    /// Outgoing, provisional received.
    Early(Outgoing),
    /// Outgoing, CANCEL sent: the INVITE's final answer ends the call.
    Cancelling(Outgoing),
    /// Incoming, ringing, not answered: the INVITE and its source, to
    /// answer it.
    Ringing {
        invite: Box<Message>,
        src: SocketAddr,
    },
    /// Incoming, 2xx sent, retransmitted until the ACK.
    Answered(OkRetransmit),
    /// Dialog confirmed.
    Confirmed { ack: Option<Ack> },
    /// BYE sent, waiting for its answer.
    Terminating { ack: Option<Ack> },
    /// Over, and forgotten when [`CallTimer::Forget`] fires.
    Ended { ack: Option<Ack> },
}

impl CallState {
    /// The outgoing INVITE, while its final answer is awaited.
    fn outgoing(&self) -> Option<&Outgoing> {
        match self {
            CallState::Calling(o)
            | CallState::CancelPending(o)
            | CallState::Early(o)
            | CallState::Cancelling(o) => Some(o),
            _ => None,
        }
    }

    /// Our ACK for the 2xx, once there is one.
    fn ack(&self) -> Option<&Ack> {
        match self {
            CallState::Confirmed { ack }
            | CallState::Terminating { ack }
            | CallState::Ended { ack } => ack.as_ref(),
            _ => None,
        }
    }

    /// Moves to the state `next` makes of the current one.
    fn step(&mut self, next: impl FnOnce(CallState) -> CallState) {
        let current = std::mem::replace(self, CallState::Confirmed { ack: None });
        *self = next(current);
    }
}

/// A call's dialog as its first INVITE makes it.
struct NewDialog {
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    local_uri: String,
    remote_uri: String,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    remote_target: String,
    route_set: Vec<String>,
}

/// A call of this agent's, from its first INVITE until forgotten.
#[derive(Debug)]
pub(in crate::ua) struct Call {
    pub(in crate::ua) id: CallHandle,
    pub(in crate::ua) direction: Direction,
    pub(in crate::ua) call_id: String,
    pub(in crate::ua) local_tag: String,
    pub(in crate::ua) remote_tag: Option<String>,
    /// Our From/To URI (the AOR) and the peer's.
    local_uri: String,
    remote_uri: String,
    local_cseq: u32,
    pub(in crate::ua) remote_cseq: Option<u32>,
    remote_target: String,
    /// Route set, in the order Route headers are written.
    route_set: Vec<String>,
    local_sdp: Option<String>,
    state: CallState,
    timers: CallTimers,
}

impl Call {
    fn new(id: CallHandle, direction: Direction, d: NewDialog, state: CallState) -> Self {
        Call {
            id,
            direction,
            call_id: d.call_id,
            local_tag: d.local_tag,
            remote_tag: d.remote_tag,
            local_uri: d.local_uri,
            remote_uri: d.remote_uri,
            local_cseq: d.local_cseq,
            remote_cseq: d.remote_cseq,
            remote_target: d.remote_target,
            route_set: d.route_set,
            local_sdp: None,
            state,
            timers: CallTimers::default(),
        }
    }

    pub(in crate::ua) fn is_ended(&self) -> bool {
        matches!(self.state, CallState::Ended { .. })
    }

    /// Our ACK for the peer's 2xx, once there is one.
    pub(in crate::ua) fn ack(&self) -> Option<&Ack> {
        self.state.ack()
    }

    /// Whether this call rings for the INVITE with server key `key`.
    pub(in crate::ua) fn rings_for(&self, key: &str) -> bool {
        matches!(&self.state, CallState::Ringing { invite, .. } if crate::build::server_key(invite) == key)
    }

    // ---- moves that keep the timers in step ------------------------------

    /// Answered: our 2xx, retransmitted from T1 until the ACK or 64·T1.
    fn answered(&mut self, now: Instant, ctx: &Context, bytes: Vec<u8>, dest: SocketAddr) {
        let timers = ctx.cfg.timers;
        self.state = CallState::Answered(OkRetransmit {
            bytes,
            dest,
            interval: timers.t1,
        });
        self.timers.set(CallTimer::Retransmit2xx, now + timers.t1);
        self.timers.set(CallTimer::AckTimeout, now + timers.t64());
    }

    /// Confirmed (with our ACK, on an outgoing call).
    fn confirm(&mut self, ack: Option<Ack>) {
        self.state = CallState::Confirmed { ack };
        self.stop_state_timers();
    }

    /// Terminating (our BYE sent), keeping our ACK.
    fn terminate(&mut self) {
        self.state.step(|s| CallState::Terminating {
            ack: s.ack().cloned(),
        });
        self.stop_state_timers();
    }

    /// Ended, keeping our ACK (to send again), forgotten in 64·T1.
    fn end(&mut self, now: Instant, ctx: &Context) {
        self.state.step(|s| CallState::Ended {
            ack: s.ack().cloned(),
        });
        self.stop_state_timers();
        self.timers
            .set(CallTimer::Forget, now + ctx.cfg.timers.t64());
    }

    /// Stops the timers a state owns: the 2xx ones run only while
    /// [`CallState::Answered`], [`CallTimer::Forget`] only while
    /// [`CallState::Ended`]. The session timer runs across states.
    fn stop_state_timers(&mut self) {
        self.timers.stop(CallTimer::Retransmit2xx);
        self.timers.stop(CallTimer::AckTimeout);
        self.timers.stop(CallTimer::Forget);
    }

    /// Ends the call, unless it is over already, and says who ended it.
    pub(in crate::ua) fn end_by(&mut self, ctx: &mut Context, now: Instant, by: EndedBy) {
        if self.is_ended() {
            return;
        }
        self.end(now, ctx);
        ctx.event(Event::CallEnded { call: self.id, by });
    }

    /// Ends the call whatever its state: CANCEL while ringing out (once a
    /// provisional came: §9.1), 603 while ringing in, BYE once established.
    pub(in crate::ua) fn hangup(&mut self, ctx: &mut Context, now: Instant) -> Result<(), UaError> {
        match &self.state {
            CallState::Calling(_) => {
                // No provisional yet: CANCEL must wait for one (§9.1).
                self.state.step(|s| match s {
                    CallState::Calling(o) => CallState::CancelPending(o),
                    other => other,
                });
                Ok(())
            }
            CallState::CancelPending(_) => Ok(()),
            CallState::Early(_) | CallState::Cancelling(_) => self.send_cancel(ctx, now),
            CallState::Ringing { .. } => {
                self.reject(ctx, now, 603, "Decline")?;
                ctx.event(Event::CallEnded {
                    call: self.id,
                    by: EndedBy::Local,
                });
                Ok(())
            }
            CallState::Answered(_) | CallState::Confirmed { .. } => self.send_bye(ctx, now),
            CallState::Terminating { .. } | CallState::Ended { .. } => Err(UaError::WrongState),
        }
    }

    // ---- timers ------------------------------------------------------------

    pub(in crate::ua) fn next_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// Whether the call is over and may be forgotten at `now`.
    pub(in crate::ua) fn forgotten(&self, now: Instant) -> bool {
        self.timers.is_expired(CallTimer::Forget, now)
    }

    /// What our unacknowledged 2xx needs at `now`, if anything: sending
    /// again (T1, 2·T1, … up to T2 apart), or, 64·T1 without an ACK,
    /// hanging up.
    pub(in crate::ua) fn due_2xx(&mut self, now: Instant, t2: Duration) -> Option<Due2xx> {
        let CallState::Answered(ok) = &mut self.state else {
            return None;
        };
        if self.timers.is_expired(CallTimer::AckTimeout, now) {
            return Some(Due2xx::GiveUp);
        }
        if !self.timers.is_expired(CallTimer::Retransmit2xx, now) {
            return None;
        }
        ok.interval = (ok.interval * 2).min(t2);
        self.timers.set(CallTimer::Retransmit2xx, now + ok.interval);
        Some(Due2xx::Resend(Transmit {
            dest: ok.dest,
            payload: ok.bytes.clone(),
        }))
    }
}
