//! What operators read: the admin console's views (users, pairs, the
//! generated PBX files, media, the metrics history) and `GET /healthz`.

use serde::{Deserialize, Serialize};

use crate::{LeaveReason, ServerEvent, Status};

/// One row of `GET /v1/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminUser {
    /// Nickname.
    pub name: String,
    /// Current status.
    pub status: Status,
    /// Extension.
    pub extension: String,
    /// When the user registered, seconds since the Unix epoch.
    pub since: u64,
    /// Let out of the waiting room (always `true` with open admission).
    pub admitted: bool,
    /// The interests this session is paired on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<String>,
    /// Where the user is registered over SIP with a built-in PBX (the
    /// binding's contact), if they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_contact: Option<String>,
}

/// `GET /v1/admin/users`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminUsers {
    /// Every current user, by name.
    pub users: Vec<AdminUser>,
    /// Moderated admission: ready users wait in the waiting room until an
    /// admin admits them (`false`: open admission, nobody waits there).
    #[serde(default)]
    pub moderated: bool,
}

/// One row of `GET /v1/admin/pairs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminPair {
    /// The side that dials.
    pub caller: String,
    /// The side that answers.
    pub callee: String,
    /// When the pair was made, seconds since the Unix epoch.
    pub since: u64,
    /// `true` once both sides are `ready_to_talk` (the call is up).
    pub in_call: bool,
    /// The interests the two share (empty: the plain draw).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_interests: Vec<String>,
    /// The pair's random id (hex), as both sides hear it.
    #[serde(default)]
    pub pair_id: String,
    /// When the call was set up, seconds since the Unix epoch (while
    /// `in_call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_since: Option<u64>,
}

/// One row of `GET /v1/admin/interests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagCount {
    /// The interest.
    pub tag: String,
    /// Waiting users who gave it.
    pub waiting: u64,
}

/// `GET /v1/admin/interests`: the interests of the users waiting now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminInterests {
    /// Users waiting in the pool.
    pub waiting: u64,
    /// Of them, with at least one interest.
    pub with_interests: u64,
    /// The most-given interests among them, most first (then by name), at
    /// most 20.
    pub top: Vec<TagCount>,
}

/// `GET /v1/admin/pairs`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminPairs {
    /// Every current pair.
    pub pairs: Vec<AdminPair>,
}

/// One generated PBX file, secrets redacted (`GET /v1/admin/sip-conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfFile {
    /// File name inside `--asterisk-conf-dir`.
    pub name: String,
    /// Its text with every secret replaced by `<redacted>`.
    pub content: String,
}

/// `GET /v1/admin/sip-conf`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SipConf {
    /// The PBX backend in use (`asterisk`, `asterisk-pjsip`, `builtin`, `kamailio`, `none`).
    pub pbx: String,
    /// The generated files, as they would be written now.
    pub files: Vec<ConfFile>,
}

/// `GET /v1/admin/media`: where calls' media flows, and what the relay
/// carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminMedia {
    /// `builtin`, `rtpengine`, `off`, or `none` (no built-in PBX).
    pub mode: String,
    /// Built-in relay: port pairs free.
    pub ports_free: u64,
    /// Built-in relay: port pairs in the range.
    pub ports_capacity: u64,
    /// Built-in relay, since start: datagrams forwarded.
    pub packets: u64,
    /// Built-in relay, since start: bytes forwarded.
    pub bytes: u64,
    /// Built-in relay, since start: datagrams dropped.
    pub dropped: u64,
    /// Calls refused for want of ports (503).
    pub exhausted: u64,
    /// Anchored calls now.
    pub calls: Vec<MediaCall>,
}

/// One anchored call in [`AdminMedia`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaCall {
    /// The relay's number for the call (the `call` label in `/metrics`).
    pub id: u64,
    /// The SIP Call-ID on the PBX's hop (to find the call in SIP logs).
    pub sip_call_id: String,
    /// The caller's and the callee's SIP usernames (their nicknames): the
    /// pair the call belongs to.
    #[serde(default)]
    pub users: [String; 2],
    /// Built-in relay: the ports facing the caller and the callee.
    pub ports: Option<[u16; 2]>,
    /// What the caller sent (built-in relay), or rtpengine's totals
    /// (from its last `query`).
    pub caller: MediaCounters,
    /// What the callee sent (built-in relay; zero with rtpengine).
    pub callee: MediaCounters,
}

/// Datagrams and bytes forwarded, datagrams dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaCounters {
    /// Datagrams forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Datagrams dropped.
    pub dropped: u64,
}

/// `GET /v1/admin/history`: key figures sampled every `every_secs`
/// seconds over the last hour, oldest first (the console's charts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricsHistory {
    /// Seconds between two samples.
    pub every_secs: u64,
    /// The samples, oldest first.
    pub samples: Vec<MetricsSample>,
}

/// One sample in [`MetricsHistory`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricsSample {
    /// Unix seconds.
    pub at: u64,
    /// Users online.
    pub users: u64,
    /// Users waiting for a partner.
    pub waiting: u64,
    /// Pairs made since start (a counter).
    pub pairings_total: u64,
    /// Open event streams.
    pub streams: u64,
    /// Calls whose media is anchored.
    pub relayed_calls: u64,
    /// Datagrams the built-in relay forwarded since start (a counter).
    pub relay_packets_total: u64,
    /// Users registered over SIP with the built-in PBX.
    pub sip_bindings: u64,
}

/// What the admin event stream (`GET /v1/admin/events`) pushes besides
/// the lobby's [`ServerEvent`](crate::ServerEvent)s (`hello`,
/// `lobby_message`, `lobby_typing`): every change to the users, the pairs,
/// the waiting room, and the PBX and media figures, as it happens (tagged
/// JSON, `"type"` field). Applied in order to `GET /v1/admin/users` and
/// `GET /v1/admin/pairs`, they keep a console's copy equal to the
/// server's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdminEvent {
    /// A user registered (status `busy`).
    UserRegistered {
        /// The new row.
        user: AdminUser,
    },
    /// A user's status changed.
    UserStatus {
        /// The row, with the new status.
        user: AdminUser,
    },
    /// A user set the interests they are paired on.
    UserInterests {
        /// The row, with the new interests.
        user: AdminUser,
    },
    /// Moderated admission: a user said `ready` before being admitted and
    /// now waits in the waiting room.
    WaitingRoomJoined {
        /// The row.
        user: AdminUser,
    },
    /// Moderated admission: a user in the waiting room left it without
    /// being admitted (said `busy`).
    WaitingRoomLeft {
        /// The row.
        user: AdminUser,
    },
    /// An admin let a user out of the waiting room (they are out of it
    /// from now on, until they log out).
    UserAdmitted {
        /// The row, `admitted`.
        user: AdminUser,
    },
    /// A user registered over SIP with a built-in PBX.
    SipRegistered {
        /// The row, with its `sip_contact`.
        user: AdminUser,
    },
    /// A user's SIP binding went (unregistered or expired).
    SipUnregistered {
        /// The row, without `sip_contact`.
        user: AdminUser,
    },
    /// A user is gone: logged out, kicked, banned or expired.
    UserLeft {
        /// Who.
        name: String,
        /// Why.
        reason: LeaveReason,
    },
    /// Two users were paired.
    PairMade {
        /// The new pair.
        pair: AdminPair,
    },
    /// Both sides of a pair said `ready_to_talk`: the call is up.
    CallStarted {
        /// The pair, `in_call`.
        pair: AdminPair,
    },
    /// A pair ended.
    PairEnded {
        /// The pair's id (hex).
        pair_id: String,
        /// The side that dialled.
        caller: String,
        /// The side that answered.
        callee: String,
        /// Why, as the partner of the one who ended it heard it.
        reason: LeaveReason,
        /// From the pairing to the end, seconds.
        paired_secs: u64,
        /// The call's length, seconds, when it was set up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_secs: Option<u64>,
    },
    /// A node's PBX and media figures, sent at most once a second and
    /// only when one changed (the built-in PBX runs on each node).
    Relay {
        /// The node (`--node-id`) whose PBX this is.
        node: String,
        /// The figures.
        figures: RelayFigures,
    },
}

/// One message on the admin event stream: a lobby event (`hello`,
/// `lobby_message`, `lobby_typing`, `pong`, `error`) or an
/// [`AdminEvent`]. Their `type`s never collide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AdminStreamEvent {
    /// A lobby event, as users hear it.
    Lobby(ServerEvent),
    /// A change to the users, pairs, waiting room or PBX figures.
    Change(AdminEvent),
}

/// The live PBX and media figures of one node, as the `relay` admin event
/// carries them (the same figures `GET /v1/admin/media` reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RelayFigures {
    /// Calls whose media is anchored now.
    pub calls: u64,
    /// Datagrams forwarded since start.
    pub packets: u64,
    /// Bytes forwarded since start.
    pub bytes: u64,
    /// Datagrams dropped since start.
    pub dropped: u64,
    /// Relay port pairs free.
    pub ports_free: u64,
    /// Relay port pairs in the range.
    pub ports_capacity: u64,
    /// Users registered over SIP with this node's PBX.
    pub sip_bindings: u64,
}

/// `GET /healthz`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `"ok"` or `"degraded"`.
    pub status: String,
    /// The PBX backend in use.
    pub pbx: String,
    /// Whether the PBX holds the current state (last write and reload OK).
    pub pbx_in_sync: bool,
    /// The last PBX error, if the PBX is out of sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pbx_error: Option<String>,
    /// Current number of users.
    pub users: u64,
    /// Whether the API is served over TLS (HTTPS and WSS) by this server.
    #[serde(default)]
    pub tls: bool,
    /// A configuration the operator should fix, such as credentials
    /// served in cleartext on a non-loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Where the state lives: `memory` or `redis`.
    #[serde(default)]
    pub state: String,
    /// Why the state store cannot serve right now (requests answer 503
    /// meanwhile; service comes back by itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    /// This node's name (`--node-id`).
    #[serde(default)]
    pub node: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_events_are_tagged_and_never_collide_with_lobby_events() {
        let ev = AdminEvent::UserLeft {
            name: "alice".into(),
            reason: LeaveReason::Kicked,
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"type":"user_left","name":"alice","reason":"kicked"}"#
        );
        // On the admin stream each message reads back as what it was.
        let lobby = ServerEvent::LobbyTyping { from: "bob".into() };
        for m in [AdminStreamEvent::Change(ev), AdminStreamEvent::Lobby(lobby)] {
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<AdminStreamEvent>(&text).unwrap(), m);
        }
        let admitted = AdminStreamEvent::Change(AdminEvent::UserAdmitted {
            user: AdminUser {
                name: "carol".into(),
                status: Status::Ready,
                extension: "111000".into(),
                since: 1,
                admitted: true,
                interests: Vec::new(),
                sip_contact: None,
            },
        });
        let text = serde_json::to_string(&admitted).unwrap();
        assert!(text.starts_with(r#"{"type":"user_admitted""#), "{text}");
        assert_eq!(
            serde_json::from_str::<AdminStreamEvent>(&text).unwrap(),
            admitted
        );
    }
}
