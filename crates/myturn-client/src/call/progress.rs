//! [`Progress`]: what the flow reports while it runs, the feed a user
//! interface shows.

use myturn_wire::Role as WireRole;

/// What the flow reports while it runs (the UI's feed).
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Registered with the pairing server.
    Registered {
        /// The nickname, as registered.
        name: String,
        /// This user's extension.
        extension: String,
    },
    /// Registered with the PBX over SIP.
    SipRegistered,
    /// `ready`: waiting for a partner.
    Waiting {
        /// The interests this wait is for (empty: the plain draw).
        interests: Vec<String>,
        /// Never falls back to the plain draw (`only_interests`).
        only: bool,
    },
    /// Paired with a partner.
    Paired {
        /// The partner's nickname.
        peer: String,
        /// This side's role in the call.
        role: WireRole,
        /// The interests the two share (empty: the plain draw).
        shared: Vec<String>,
    },
    /// The partner's phone rings (caller).
    Ringing,
    /// The call is up and the secure channel agreed.
    Connected {
        /// The short authentication string, to compare aloud.
        sas: String,
    },
    /// A chat line over the call.
    Chat {
        /// Who said it.
        from: String,
        /// What.
        text: String,
    },
    /// A lobby chat line, while waiting.
    Lobby {
        /// Who said it (`moderator` for admins).
        from: String,
        /// What.
        text: String,
    },
    /// The call ended.
    Ended {
        /// This side hung up (else the partner did).
        by_us: bool,
    },
    /// The partner did not make it to a call (left, never answered): the
    /// flow draws again by itself.
    Redraw {
        /// Why, for the user.
        why: String,
    },
    /// The server went away (its event stream closed); the flow registers
    /// again once it is back.
    ServerLost,
    /// Registered again after the server came back.
    Reconnected,
}
