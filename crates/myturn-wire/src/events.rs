//! The realtime event stream (`GET /v1/events`, a WebSocket): what the
//! server pushes, what a client sends, and the subprotocol names.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{LeaveReason, PeerInfo, Role, Status};

/// Events pushed from the server to a client over `GET /v1/events`
/// (tagged JSON, `"type"` field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// Sent once on connect: who the server thinks this is.
    Hello {
        /// The nickname.
        name: String,
        /// Current status.
        status: Status,
        /// When the access token used expires, Unix seconds.
        expires_at: u64,
    },
    /// This user was paired.
    Paired {
        /// Who the partner is.
        peer: PeerInfo,
        /// This user's role.
        role: Role,
        /// The pair's random id, as in [`PeerResponse::pair_id`](crate::PeerResponse::pair_id).
        pair_id: String,
        /// The interests the two share (empty: paired in the plain draw).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shared_interests: Vec<String>,
    },
    /// The partner is `ready_to_talk` (the caller may dial now).
    PeerReadyToTalk,
    /// The pair ended.
    PeerLeft {
        /// Why.
        reason: LeaveReason,
    },
    /// This user's own status changed.
    Status {
        /// The new status.
        status: Status,
    },
    /// An admin removed this user. The connection closes next.
    Kicked,
    /// An admin banned this name until `until` (Unix seconds). The
    /// connection closes next.
    Banned {
        /// End of the ban.
        until: u64,
    },
    /// An admin let this user out of the waiting room into the pairing pool.
    Admitted,
    /// The access token this connection authenticated with expires soon:
    /// refresh it over HTTP and send `reauth`.
    SessionExpiring {
        /// Expiry, Unix seconds.
        expires_at: u64,
    },
    /// The access token expired (or the session was revoked). The
    /// connection closes next.
    SessionExpired,
    /// A lobby chat line, to every waiting user and the admins.
    LobbyMessage {
        /// The sender's name (`"moderator"` for admins).
        from: String,
        /// `true` when an admin said it.
        admin: bool,
        /// The text.
        text: String,
        /// When, Unix milliseconds.
        at: u64,
    },
    /// Someone in the lobby is typing.
    LobbyTyping {
        /// Who.
        from: String,
    },
    /// Answer to a client `ping`.
    Pong {
        /// The ping's id, echoed.
        id: u64,
    },
    /// A client event was refused; the connection stays open.
    Error {
        /// Stable code (same codes as the HTTP error body).
        code: String,
        /// What went wrong.
        message: String,
    },
}

/// Events a client sends over `GET /v1/events` (tagged JSON).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientEvent {
    /// Say something in the lobby (only while waiting).
    LobbySay {
        /// One line of text, at most [`LOBBY_MAX_LEN`](crate::LOBBY_MAX_LEN) bytes.
        text: String,
    },
    /// Typing in the lobby.
    Typing,
    /// Application-level ping; answered with `pong`.
    Ping {
        /// Echoed back.
        #[serde(default)]
        id: u64,
    },
    /// Swap in a fresh access token (after `POST /v1/session/refresh`) so
    /// the connection outlives the old one.
    Reauth {
        /// The new access token.
        token: String,
    },
}

impl fmt::Debug for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEvent::LobbySay { text } => {
                f.debug_struct("LobbySay").field("text", text).finish()
            }
            ClientEvent::Typing => f.write_str("Typing"),
            ClientEvent::Ping { id } => f.debug_struct("Ping").field("id", id).finish(),
            ClientEvent::Reauth { .. } => f.write_str("Reauth { token: <redacted> }"),
        }
    }
}

/// The WebSocket subprotocol myTurn speaks.
pub const WS_PROTOCOL: &str = "myturn.v1";
/// Prefix of the subprotocol that carries the access token for clients
/// that cannot set an `Authorization` header: offer
/// `Sec-WebSocket-Protocol: myturn.v1, bearer.<token>`.
pub const WS_BEARER_PREFIX: &str = "bearer.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_events_parse_strictly() {
        let e: ClientEvent = serde_json::from_str(r#"{"type":"lobby_say","text":"hi"}"#).unwrap();
        assert_eq!(e, ClientEvent::LobbySay { text: "hi".into() });
        assert_eq!(
            serde_json::from_str::<ClientEvent>(r#"{"type":"ping"}"#).unwrap(),
            ClientEvent::Ping { id: 0 }
        );
        assert!(serde_json::from_str::<ClientEvent>(r#"{"type":"shout","text":"x"}"#).is_err());
        let r = ClientEvent::Reauth {
            token: "secret.jwt.value".into(),
        };
        assert!(!format!("{r:?}").contains("secret"));
    }

    #[test]
    fn events_are_tagged() {
        let ev = ServerEvent::PeerLeft {
            reason: LeaveReason::HungUp,
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"type":"peer_left","reason":"hung_up"}"#
        );
    }
}
