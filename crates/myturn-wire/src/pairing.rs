//! A user's place in the pairing flow: the statuses and how to ask for
//! one, the roles in a call, the partner as each side sees it, and why a
//! pair ended.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A user's status, as in the original design's flow:
/// `busy → ready → paired → ready_to_talk → in_call → busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Logged in, not looking for a partner (the main screen).
    Busy,
    /// Waiting to be paired with a random stranger.
    Ready,
    /// Paired; the media/SIP set-up has not started yet.
    Paired,
    /// Paired and waiting for (callee) or placing (caller) the SIP call.
    ReadyToTalk,
    /// Both sides of the pair are `ready_to_talk`: the call is up.
    InCall,
}

impl Status {
    /// The JSON spelling, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Busy => "busy",
            Status::Ready => "ready",
            Status::Paired => "paired",
            Status::ReadyToTalk => "ready_to_talk",
            Status::InCall => "in_call",
        }
    }

    /// Every status, in flow order.
    pub const ALL: [Status; 5] = [
        Status::Busy,
        Status::Ready,
        Status::Paired,
        Status::ReadyToTalk,
        Status::InCall,
    ];
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The statuses a client may ask for with `PUT /v1/me/status`.
/// (`paired` and `in_call` are set by the server only.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestedStatus {
    /// Leave the pool or end the call; back to the main screen.
    Busy,
    /// Join the pool (ends a current pair first: "next partner").
    Ready,
    /// Paired, and ready for the SIP call.
    ReadyToTalk,
}

impl From<RequestedStatus> for Status {
    fn from(s: RequestedStatus) -> Self {
        match s {
            RequestedStatus::Busy => Status::Busy,
            RequestedStatus::Ready => Status::Ready,
            RequestedStatus::ReadyToTalk => Status::ReadyToTalk,
        }
    }
}

/// Which side of the SIP call a paired user plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Dials the partner's extension once the partner is `ready_to_talk`.
    Caller,
    /// Sets `ready_to_talk` and waits for the INVITE.
    Callee,
}

impl Role {
    /// The other side.
    pub fn opposite(self) -> Role {
        match self {
            Role::Caller => Role::Callee,
            Role::Callee => Role::Caller,
        }
    }
}

/// `PUT /v1/me/status`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatusRequest {
    /// The wanted status.
    pub status: RequestedStatus,
    /// With `ready`: the fingerprint of the media key this client will use
    /// for its next call (base64url SHA-256, see `docs/protocol.md`). The
    /// partner gets it in `paired`, so a key swapped on the media path is
    /// detected even if nobody compares the SAS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_key: Option<String>,
    /// With `ready`: the topics to be paired on (see
    /// [`normalize_interests`](crate::normalize_interests)). Absent: the
    /// interests given last in this session stay; `[]`: none (the plain
    /// draw at once). A user with interests is paired among the waiting
    /// users who share one, and after the interest wait with anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interests: Option<Vec<String>>,
    /// With `ready` and `interests`: seconds to wait for a shared interest
    /// before the plain draw. At most the server's `--interest-wait`
    /// (also the default); less is honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interest_wait: Option<u64>,
    /// With `ready` and `interests`: never fall back to the plain draw.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_interests: bool,
}

impl SetStatusRequest {
    /// Just a status: no media key, the session's interests as they are.
    pub fn new(status: RequestedStatus) -> Self {
        SetStatusRequest {
            status,
            media_key: None,
            interests: None,
            interest_wait: None,
            only_interests: false,
        }
    }
}

/// `GET /v1/me` and the answer to `PUT /v1/me/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeResponse {
    /// The nickname.
    pub name: String,
    /// Current status.
    pub status: Status,
    /// The user's extension.
    pub extension: String,
    /// The interests this session is paired on (normalised).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<String>,
}

/// The partner, as seen by one side of a pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerInfo {
    /// The partner's nickname.
    pub name: String,
    /// The partner's extension (what the caller dials).
    pub extension: String,
    /// The partner's media key fingerprint, if it sent one with `ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_key: Option<String>,
}

/// `200` answer to `GET /v1/me/peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerResponse {
    /// Who the partner is.
    pub peer: PeerInfo,
    /// This user's role in the call.
    pub role: Role,
    /// The partner's current status (the caller dials once it is
    /// `ready_to_talk`).
    pub peer_status: Status,
    /// The pair's random id (128 bits as 32 lowercase hex digits), the same
    /// for both sides. The media key schedule binds it: it is the only
    /// call identifier both clients see unchanged (a PBX rewrites SIP's).
    pub pair_id: String,
    /// The interests the two share (empty: paired in the plain draw).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_interests: Vec<String>,
}

/// Why a pair ended, in [`ServerEvent::PeerLeft`](crate::ServerEvent::PeerLeft).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The partner hung up (went `busy` or `ready` again).
    HungUp,
    /// The partner logged out.
    LoggedOut,
    /// An admin removed the partner.
    Kicked,
    /// The partner was banned.
    Banned,
    /// The partner went silent for longer than the lease.
    Expired,
    /// The partner's event stream closed and did not come back within the
    /// grace for reconnects: its client is gone.
    Disconnected,
    /// The call was not set up within the server's answer timeout (a
    /// partner never got ready or never answered): the pair is ended, and
    /// a live client draws again.
    NoAnswer,
}

impl LeaveReason {
    /// The JSON spelling, for logs and line mode.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::HungUp => "hung_up",
            LeaveReason::LoggedOut => "logged_out",
            LeaveReason::Kicked => "kicked",
            LeaveReason::Banned => "banned",
            LeaveReason::Expired => "expired",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::NoAnswer => "no_answer",
        }
    }

    /// Every reason.
    pub const ALL: [LeaveReason; 7] = [
        LeaveReason::HungUp,
        LeaveReason::LoggedOut,
        LeaveReason::Kicked,
        LeaveReason::Banned,
        LeaveReason::Expired,
        LeaveReason::Disconnected,
        LeaveReason::NoAnswer,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_reason_as_str_is_its_json_spelling() {
        for r in LeaveReason::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn requests_reject_unknown_fields() {
        assert!(serde_json::from_str::<SetStatusRequest>(r#"{"status":"ready"}"#).is_ok());
        assert!(serde_json::from_str::<SetStatusRequest>(r#"{"status":"in_call"}"#).is_err());
        assert!(
            serde_json::from_str::<SetStatusRequest>(r#"{"status":"ready","x":true}"#).is_err()
        );
    }
}
