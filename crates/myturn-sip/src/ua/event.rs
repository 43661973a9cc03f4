//! What the agent tells its application: the [`Event`]s it reports, the
//! [`CallHandle`]s they name, the [`Stats`] counters, and the [`UaError`]s
//! of its commands.

use std::net::SocketAddr;
use std::time::Duration;

use crate::build;
use crate::sdp::Sdp;

/// A call, as the application names it: this agent's own handle, not the
/// SIP Call-ID (that one is the dialog's, and a back-to-back agent gives each
/// leg its own; see [`super::UserAgent::sip_call_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// This agent hung up.
    Local,
    /// The peer hung up (BYE, CANCEL).
    Remote,
    /// The session timer ran out: the refresher (the PBX) stopped
    /// refreshing, so the signalling path is gone; this agent sent a BYE.
    SessionExpired,
}

/// What the agent reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The registrar accepted the binding for `expires`.
    Registered {
        /// The lifetime the registrar granted.
        expires: Duration,
        /// The address the registrar saw us at (`received`/`rport`), when
        /// it differs from the local one.
        public: Option<SocketAddr>,
    },
    /// The proxy sees us at a new public address (a NAT rebinding); the
    /// binding is being registered again with it.
    PublicAddressChanged {
        /// The address it saw before.
        from: SocketAddr,
        /// The address it sees now.
        to: SocketAddr,
    },
    /// Registration (or its refresh) failed; the agent retries a refresh
    /// in 30 s if it was registered before.
    RegistrationFailed {
        /// The final status (408 on timeout, 0 for a domain that is no URI).
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The binding was removed (`Expires: 0` answered).
    Unregistered,
    /// Someone calls us. Answer with [`super::UserAgent::answer`] or refuse
    /// with [`super::UserAgent::reject`].
    IncomingCall {
        /// The call's handle.
        call: CallHandle,
        /// The SIP Call-ID of the dialog.
        sip_call_id: String,
        /// The caller's user part (extension) and display name.
        from_user: String,
        /// The caller's display name.
        from_display: Option<String>,
        /// The SDP offer, when the INVITE had one.
        offer: Option<Sdp>,
    },
    /// 180/183 on our INVITE.
    Ringing {
        /// The call's handle.
        call: CallHandle,
    },
    /// Our INVITE was answered (2xx; ACK sent).
    Answered {
        /// The call's handle.
        call: CallHandle,
        /// The SIP Call-ID of the dialog.
        sip_call_id: String,
        /// The SDP answer in the 2xx.
        answer: Option<Sdp>,
    },
    /// The ACK for our 2xx arrived: media may flow both ways.
    Confirmed {
        /// The call's handle.
        call: CallHandle,
        /// The SDP in the ACK, if any.
        answer: Option<Sdp>,
    },
    /// Our INVITE failed: 404, 486, 603, 408 (timeout or no answer), ….
    CallFailed {
        /// The call's handle.
        call: CallHandle,
        /// The final status (408 on timeout).
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A re-INVITE or UPDATE changed the remote media.
    RemoteMediaChanged {
        /// The call's handle.
        call: CallHandle,
        /// The peer's new session description.
        sdp: Sdp,
    },
    /// The call is over (BYE either way, CANCEL, or an unanswered 2xx).
    CallEnded {
        /// The call's handle.
        call: CallHandle,
        /// Who ended it.
        by: EndedBy,
    },
}

/// Counters an operator can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that were not SIP at all, or too large (dropped).
    pub dropped: u64,
    /// Malformed requests answered with 400/505/513.
    pub rejected: u64,
    /// Request retransmissions absorbed by server transactions.
    pub absorbed: u64,
    /// Responses matching no transaction nor dialog.
    pub stray_responses: u64,
    /// Our own retransmissions (timers A, E, G and 2xx).
    pub retransmissions: u64,
}

/// Errors of the command API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UaError {
    #[error("no such call")]
    /// The handle names no call (or one already forgotten).
    NoSuchCall,
    #[error("the call is not in a state that allows this")]
    /// Not possible in the call's current state.
    WrongState,
    #[error("invalid target URI `{0}`")]
    /// A target that is neither an extension nor a SIP URI.
    BadTarget(String),
}

impl From<build::BadUri> for UaError {
    fn from(e: build::BadUri) -> Self {
        UaError::BadTarget(e.0)
    }
}
