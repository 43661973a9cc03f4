//! Wire types shared by the myTurn pairing server (`myturn-server`) and its
//! clients (`myturn`, the load tool, tests).
//!
//! Everything that crosses the HTTP API or the event stream as JSON is
//! defined here once, so that the server and the clients cannot drift apart:
//!
//! * requests (`CreateUserRequest`, `SetStatusRequest`, …) reject unknown
//!   fields, so a typo in a client is a `400`, not a silently ignored field;
//! * responses (`CreateUserResponse`, `MeResponse`, `PeerResponse`, …);
//! * the error body every non-2xx response carries: [`ErrorBody`], which is
//!   `{"error": {"code": "...", "message": "..."}}`;
//! * [`ServerEvent`], the tagged JSON events pushed to clients.
//!
//! It also holds the nickname rule ([`validate_name`]), because a client
//! should be able to tell a user "that name is not allowed" before asking
//! the server, and the server must apply exactly the same rule.
//!
//! This crate does no I/O. Use it with `serde_json`:
//!
//! ```
//! use myturn_wire::{CreateUserRequest, validate_name};
//! let req: CreateUserRequest = serde_json::from_str(r#"{"name":"alice"}"#).unwrap();
//! assert!(validate_name(&req.name).is_ok());
//! assert!(serde_json::from_str::<CreateUserRequest>(r#"{"name":"a","x":1}"#).is_err());
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

/// Shortest allowed nickname, in characters.
pub const NAME_MIN_LEN: usize = 3;
/// Longest allowed nickname, in characters.
pub const NAME_MAX_LEN: usize = 32;
/// The nickname rule, as shown to users in error messages.
pub const NAME_RULE: &str =
    "a name is 3 to 32 characters: an ASCII letter first, then ASCII letters, digits, '_' or '-'";

/// Why a nickname was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Fewer than [`NAME_MIN_LEN`] characters.
    #[error("name is too short: {NAME_RULE}")]
    TooShort,
    /// More than [`NAME_MAX_LEN`] characters.
    #[error("name is too long: {NAME_RULE}")]
    TooLong,
    /// The first character is not an ASCII letter.
    #[error("name must start with an ASCII letter: {NAME_RULE}")]
    BadFirst,
    /// A character outside `[A-Za-z0-9_-]`.
    #[error("name contains a character that is not allowed: {NAME_RULE}")]
    BadChar,
    /// A name the PBX config reserves for itself (`general`, …).
    #[error("that name is reserved; pick another one")]
    Reserved,
}

/// Names that are section names with a special meaning in Asterisk's
/// config (`[general]` in sip.conf, `[globals]` in extensions.conf, …), so a
/// peer section of that name would change PBX-wide settings. Compared
/// case-insensitively.
pub const RESERVED_NAMES: &[&str] = &[
    "general",
    "authentication",
    "globals",
    "global",
    "system",
    "default",
];

/// Checks a nickname against the rule: an ASCII letter first, then ASCII
/// letters, digits, `_` or `-`, 3 to 32 characters in all.
///
/// Names are *rejected*, never escaped: a name that passes this check is safe
/// to write verbatim into Asterisk's `sip.conf`, `pjsip.conf` and
/// `extensions.conf`, into SIP URIs and into log lines.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    // Length is checked on bytes; any non-ASCII byte fails the charset check
    // below anyway, so counting bytes and characters agree for valid names.
    if bytes.len() > NAME_MAX_LEN {
        return Err(NameError::TooLong);
    }
    let Some((&first, rest)) = bytes.split_first() else {
        return Err(NameError::TooShort);
    };
    if !first.is_ascii_alphabetic() {
        return Err(NameError::BadFirst);
    }
    if !rest
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
    {
        return Err(NameError::BadChar);
    }
    if bytes.len() < NAME_MIN_LEN {
        return Err(NameError::TooShort);
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// A user's status, as in the original design's flow:
/// `busy → ready → paired → ready_to_talk → in_call → busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// `POST /v1/users`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The nickname; see [`validate_name`].
    pub name: String,
}

/// The SIP account the server created for a user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipCredentials {
    /// Digest username (the nickname).
    pub username: String,
    /// Digest password: at least 128 random bits, unique per user. Only ever
    /// returned once, in the `POST /v1/users` response.
    pub password: String,
    /// The user's dialable extension, e.g. `"111000"`.
    pub extension: String,
    /// The SIP domain / registrar, as `host[:port]`.
    pub domain: String,
}

impl fmt::Debug for SipCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("extension", &self.extension)
            .field("domain", &self.domain)
            .finish()
    }
}

/// `201` answer to `POST /v1/users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUserResponse {
    /// The nickname as registered.
    pub name: String,
    /// Short-lived JWT access token (HS256); send as `Authorization: Bearer`.
    pub token: String,
    /// Opaque refresh token for `POST /v1/session/refresh`.
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
    /// The user's own SIP account.
    pub sip: SipCredentials,
}

impl fmt::Debug for CreateUserResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateUserResponse")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("sip", &self.sip)
            .finish()
    }
}

/// `PUT /v1/me/status`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStatusRequest {
    /// The wanted status.
    pub status: RequestedStatus,
}

/// `GET /v1/me` and the answer to `PUT /v1/me/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeResponse {
    /// The nickname.
    pub name: String,
    /// Current status.
    pub status: Status,
    /// The user's extension.
    pub extension: String,
}

/// The partner, as seen by one side of a pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The partner's nickname.
    pub name: String,
    /// The partner's extension (what the caller dials).
    pub extension: String,
}

/// `200` answer to `GET /v1/me/peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerResponse {
    /// Who the partner is.
    pub peer: PeerInfo,
    /// This user's role in the call.
    pub role: Role,
    /// The partner's current status (the caller dials once it is
    /// `ready_to_talk`).
    pub peer_status: Status,
}

/// `POST /v1/session/refresh`
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token to spend.
    pub refresh_token: String,
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshRequest { refresh_token: <redacted> }")
    }
}

/// `200` answer to `POST /v1/session/refresh`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// New access token.
    pub token: String,
    /// New refresh token; the old one is spent.
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// One row of `GET /v1/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    /// Nickname.
    pub name: String,
    /// Current status.
    pub status: Status,
    /// Extension.
    pub extension: String,
    /// When the user registered, seconds since the Unix epoch.
    pub since: u64,
}

/// `GET /v1/admin/users`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUsers {
    /// Every current user, by name.
    pub users: Vec<AdminUser>,
}

/// One row of `GET /v1/admin/pairs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPair {
    /// The side that dials.
    pub caller: String,
    /// The side that answers.
    pub callee: String,
    /// When the pair was made, seconds since the Unix epoch.
    pub since: u64,
    /// `true` once both sides are `ready_to_talk` (the call is up).
    pub in_call: bool,
}

/// `GET /v1/admin/pairs`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPairs {
    /// Every current pair.
    pub pairs: Vec<AdminPair>,
}

/// One generated PBX file, secrets redacted (`GET /v1/admin/sip-conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfFile {
    /// File name inside `--asterisk-conf-dir`.
    pub name: String,
    /// Its text with every secret replaced by `<redacted>`.
    pub content: String,
}

/// `GET /v1/admin/sip-conf`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipConf {
    /// The PBX backend in use (`asterisk`, `asterisk-pjsip`, `builtin`, `none`).
    pub pbx: String,
    /// The generated files, as they would be written now.
    pub files: Vec<ConfFile>,
}

/// `GET /healthz`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// A machine-readable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case: `invalid_name`, `name_taken`,
    /// `unauthorized`, `not_ready`, …
    pub code: String,
    /// What went wrong and what to do about it, for people.
    pub message: String,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// Why a pair ended, in [`ServerEvent::PeerLeft`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The partner hung up (went `busy` or `ready` again).
    HungUp,
    /// The partner logged out.
    LoggedOut,
    /// An admin removed the partner.
    Kicked,
    /// The partner went silent for longer than the lease.
    Expired,
}

/// Events pushed from the server to a client (tagged JSON, `"type"` field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// This user was paired.
    Paired {
        /// Who the partner is.
        peer: PeerInfo,
        /// This user's role.
        role: Role,
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
    /// An admin removed this user.
    Kicked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["abc", "Alice", "a-b", "a_b", "x12", &"a".repeat(32)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        let cases: &[(&str, NameError)] = &[
            ("", NameError::TooShort),
            ("ab", NameError::TooShort),
            ("_abc", NameError::BadFirst),
            ("1abc", NameError::BadFirst),
            ("-abc", NameError::BadFirst),
            ("ab c", NameError::BadChar),
            ("abc\n", NameError::BadChar),
            ("zoë", NameError::BadChar),
            ("ﬁle", NameError::BadFirst),
        ];
        for (name, err) in cases {
            assert_eq!(validate_name(name).as_ref(), Err(err), "{name:?}");
        }
        assert_eq!(validate_name(&"a".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_name("General"), Err(NameError::Reserved));
        assert_eq!(validate_name("authentication"), Err(NameError::Reserved));
        assert_eq!(validate_name("generals"), Ok(()));
        for c in "[]();,=>&/${}#'\"\\.@:<*!?".chars() {
            let name = format!("ab{c}c");
            assert_eq!(validate_name(&name), Err(NameError::BadChar), "{name:?}");
        }
    }

    #[test]
    fn the_message_states_the_rule() {
        let msg = NameError::BadChar.to_string();
        assert!(msg.contains("ASCII letter first"), "{msg}");
        assert!(msg.contains("3 to 32"), "{msg}");
    }

    #[test]
    fn requests_reject_unknown_fields() {
        assert!(serde_json::from_str::<SetStatusRequest>(r#"{"status":"ready"}"#).is_ok());
        assert!(serde_json::from_str::<SetStatusRequest>(r#"{"status":"in_call"}"#).is_err());
        assert!(
            serde_json::from_str::<SetStatusRequest>(r#"{"status":"ready","x":true}"#).is_err()
        );
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

    #[test]
    fn secrets_stay_out_of_debug() {
        let sip = SipCredentials {
            username: "alice".into(),
            password: "s3cret-value".into(),
            extension: "111000".into(),
            domain: "127.0.0.1:5060".into(),
        };
        assert!(!format!("{sip:?}").contains("s3cret"));
    }
}
