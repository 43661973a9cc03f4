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

#![warn(missing_docs, unreachable_pub)]

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
    // Lobby lines from admins are signed "moderator".
    "moderator",
    "admin",
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

/// `POST /v1/users`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The nickname; see [`validate_name`].
    pub name: String,
}

/// The SIP account the server created for a user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
}

/// Length of a media key fingerprint: base64url of 32 bytes, no padding.
pub const MEDIA_KEY_LEN: usize = 43;

/// Checks a media key fingerprint's shape: 43 base64url characters.
pub fn validate_media_key(key: &str) -> Result<(), String> {
    if key.len() == MEDIA_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "media_key must be the base64url (no padding) SHA-256 of the media public key: {MEDIA_KEY_LEN} characters of A-Z a-z 0-9 - _"
        ))
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
}

/// `POST /v1/session/refresh`
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
}

/// `GET /v1/admin/users`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminUsers {
    /// Every current user, by name.
    pub users: Vec<AdminUser>,
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
    /// The PBX backend in use (`asterisk`, `asterisk-pjsip`, `builtin`, `none`).
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
}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// A machine-readable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
}

/// Longest lobby chat message, in bytes of UTF-8.
pub const LOBBY_MAX_LEN: usize = 500;
/// Longest report reason, in bytes of UTF-8.
pub const REPORT_MAX_LEN: usize = 500;

/// Why a chat line or report text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty or only whitespace.
    #[error("the text is empty")]
    Empty,
    /// Over the limit.
    #[error("the text is longer than {0} bytes")]
    TooLong(usize),
    /// Holds a control character (newline, escape, NUL, bidi override…).
    #[error("the text contains a control character; send one line of plain text")]
    Control,
}

/// Checks a chat line or report reason: non-empty, at most `max` bytes,
/// one line of text with no control characters (C0, DEL, C1, and the
/// Unicode bidi overrides that can disguise what a line says).
pub fn validate_text(text: &str, max: usize) -> Result<(), TextError> {
    if text.len() > max {
        return Err(TextError::TooLong(max));
    }
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
    };
    if text.chars().any(bad) {
        return Err(TextError::Control);
    }
    Ok(())
}

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
        /// The pair's random id, as in [`PeerResponse::pair_id`].
        pair_id: String,
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
        /// One line of text, at most [`LOBBY_MAX_LEN`] bytes.
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

/// `POST /v1/me/report`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// What happened, at most [`REPORT_MAX_LEN`] bytes, one line.
    pub reason: String,
}

/// One report (`GET /v1/admin/reports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// Who reported.
    pub reporter: String,
    /// Who was reported (the current or last partner).
    pub reported: String,
    /// Why.
    pub reason: String,
    /// When, Unix seconds.
    pub at: u64,
}

/// `GET /v1/admin/reports`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reports {
    /// Newest last.
    pub reports: Vec<Report>,
}

/// `POST /v1/admin/admit`: one user by name, or everyone waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmitRequest {
    /// Admit this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Admit everyone in the waiting room.
    #[serde(default)]
    pub all: bool,
}

/// Answer to `POST /v1/admin/admit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdmitResponse {
    /// Who was admitted.
    pub admitted: Vec<String>,
}

/// `POST /v1/admin/lobby`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LobbySay {
    /// The line to say.
    pub text: String,
}

/// `POST /v1/admin/bans`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// The name to ban (case-insensitive).
    pub name: String,
    /// For how long, in seconds (1 to 31,536,000).
    pub seconds: u64,
}

/// One ban (`GET /v1/admin/bans`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ban {
    /// The banned name, lower-cased.
    pub name: String,
    /// End of the ban, Unix seconds.
    pub until: u64,
}

/// `GET /v1/admin/bans`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bans {
    /// Active bans.
    pub bans: Vec<Ban>,
}

/// The WebSocket subprotocol myTurn speaks.
pub const WS_PROTOCOL: &str = "myturn.v1";
/// Prefix of the subprotocol that carries the access token for clients
/// that cannot set an `Authorization` header: offer
/// `Sec-WebSocket-Protocol: myturn.v1, bearer.<token>`.
pub const WS_BEARER_PREFIX: &str = "bearer.";

/// Entry points shared by the fuzz targets (`fuzz/`) and the smoke tests
/// that run the same bodies on the stable toolchain.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Everything a client can send as JSON, and the text validators.
    /// Must never panic.
    pub fn wire_json(data: &[u8]) {
        let _ = serde_json::from_slice::<CreateUserRequest>(data);
        let _ = serde_json::from_slice::<SetStatusRequest>(data);
        let _ = serde_json::from_slice::<RefreshRequest>(data);
        let _ = serde_json::from_slice::<ReportRequest>(data);
        let _ = serde_json::from_slice::<AdmitRequest>(data);
        let _ = serde_json::from_slice::<BanRequest>(data);
        let _ = serde_json::from_slice::<LobbySay>(data);
        if let Ok(ClientEvent::LobbySay { text }) = serde_json::from_slice::<ClientEvent>(data) {
            let _ = validate_text(&text, LOBBY_MAX_LEN);
        }
        if let Ok(s) = std::str::from_utf8(data) {
            if validate_name(s).is_ok() {
                // The promise: a valid name holds only config-safe bytes.
                assert!(s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            }
            let _ = validate_text(s, REPORT_MAX_LEN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_reason_as_str_is_its_json_spelling() {
        use LeaveReason::*;
        for r in [
            HungUp,
            LoggedOut,
            Kicked,
            Banned,
            Expired,
            Disconnected,
            NoAnswer,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

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
        assert_eq!(validate_name("Moderator"), Err(NameError::Reserved));
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
    fn fuzz_body_survives_random_and_mutated_inputs() {
        // A deterministic xorshift so the test needs no RNG crate.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: &[&[u8]] = &[
            br#"{"name":"alice"}"#,
            br#"{"type":"lobby_say","text":"hi"}"#,
            br#"{"type":"reauth","token":"a.b.c"}"#,
            br#"{"status":"ready"}"#,
            br#"{"name":"bob","seconds":60}"#,
        ];
        for i in 0..20_000 {
            let seed = seeds[i % seeds.len()];
            let mut v = seed.to_vec();
            for _ in 0..(next() % 4) {
                let pos = (next() as usize) % (v.len() + 1);
                match next() % 3 {
                    0 if pos < v.len() => v[pos] = next() as u8,
                    1 => v.insert(pos, next() as u8),
                    _ if pos < v.len() => {
                        v.remove(pos);
                    }
                    _ => {}
                }
            }
            fuzzing::wire_json(&v);
        }
    }

    #[test]
    fn text_rules() {
        assert_eq!(validate_text("hi there", 10), Ok(()));
        assert_eq!(validate_text("zażółć 👋", 100), Ok(()));
        assert_eq!(validate_text("   ", 10), Err(TextError::Empty));
        assert_eq!(
            validate_text("0123456789x", 10),
            Err(TextError::TooLong(10))
        );
        for bad in [
            "a\nb",
            "a\rb",
            "a\u{1b}[31mb",
            "a\0b",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{202e}b",
            "a\u{2028}b",
        ] {
            assert_eq!(validate_text(bad, 100), Err(TextError::Control), "{bad:?}");
        }
    }

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
