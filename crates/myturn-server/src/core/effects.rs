//! What a use case asks of the world besides its reply: [`Effects`].
//!
//! The rules never perform I/O. A use case writes its consequences here,
//! in the order they happened, and the store carries them out: the
//! deliveries inside the same atomic step (so every user hears about
//! changes in the order they happened), the PBX change after it.

use std::time::Duration;

use myturn_wire::{AdminEvent, LeaveReason, ServerEvent};
use serde::{Deserialize, Serialize};

use super::matching::PairKind;
use super::state::{Millis, UserId};

/// Something the world must learn from a use case, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// A user registered: open their wake-ups.
    Joined(UserId),
    /// One event for one user (wakes their long-polls too).
    Event(UserId, ServerEvent),
    /// A lobby line or typing indicator: to these members and the admins.
    Lobby {
        /// Who in the lobby hears it.
        members: Vec<UserId>,
        /// What.
        event: ServerEvent,
    },
    /// A change the admins' streams hear (every node's, so that a console
    /// on any node sees every change).
    Admin(AdminEvent),
    /// A session family was revoked: its streams hear `session_expired`
    /// and close.
    FamilyRevoked(u64),
    /// A user left for `reason`: their streams hear `farewell` (if any)
    /// and close; their long-polls wake up and find them gone.
    Left {
        /// Who.
        user: UserId,
        /// Why.
        reason: LeaveReason,
        /// Said before the close (kicked, banned).
        farewell: Option<ServerEvent>,
    },
}

/// A pair made, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairMade {
    /// How.
    pub kind: PairKind,
    /// How long each of the two waited in the pool.
    pub waited: [Duration; 2],
}

/// A step in a session's story, for the node's lifecycle log (the core
/// writes it, the node logs it: the core never logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    /// Two users were paired.
    Paired {
        /// The pair's id (hex), as the clients hear it.
        pair_id: String,
        /// The newcomer, then the one taken from the pool.
        names: [String; 2],
        /// The interests the two share (empty: the plain draw).
        shared: Vec<String>,
        /// How they were matched.
        kind: PairKind,
    },
    /// Both sides said `ready_to_talk`: the call is set up.
    CallStarted {
        /// The pair's id (hex).
        pair_id: String,
        /// The one who said it last, then the partner.
        names: [String; 2],
        /// From the pairing to now.
        setup: Duration,
    },
    /// A pair ended.
    PairEnded {
        /// The pair's id (hex).
        pair_id: String,
        /// The one who left (or held the call up), then the partner.
        names: [String; 2],
        /// Why, as the partner hears it.
        reason: LeaveReason,
        /// From the pairing to the end.
        paired: Duration,
        /// The call's length, when it was set up.
        call: Option<Duration>,
    },
}

/// What a use case asks of the world besides its reply.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    /// To deliver, in this order.
    pub deliveries: Vec<Delivery>,
    /// The PBX's account directory changed.
    pub pbx_changed: bool,
    /// Pairs made.
    pub pairings: Vec<PairMade>,
    /// The lifecycle steps, in order, for the log.
    pub story: Vec<Told>,
    /// The next moment a sweep has work (a waiting user's interest wait
    /// runs out), if this use case set one.
    pub wake_at: Option<Millis>,
}

impl Effects {
    /// Asks for a sweep at `at` (the earliest asked wins).
    pub(crate) fn wake(&mut self, at: Millis) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Tells `user` about `event`.
    pub(crate) fn tell(&mut self, user: UserId, event: ServerEvent) {
        self.deliveries.push(Delivery::Event(user, event));
    }

    /// Tells the admins about `event`.
    pub(crate) fn tell_admins(&mut self, event: AdminEvent) {
        self.deliveries.push(Delivery::Admin(event));
    }
}
