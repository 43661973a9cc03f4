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
//!
//! The types live in modules by job and are all re-exported here, so
//! every type is `myturn_wire::Name`:
//!
//! * `users`: registration, the SIP account, token refresh;
//! * `pairing`: statuses, roles, the partner, why a pair ended;
//! * `events`: the WebSocket event stream, both ways;
//! * `moderation`: reports, admission, the lobby, bans;
//! * `admin`: the admin console's views and `/healthz`;
//! * `error`: the error body;
//! * `rules`: what a nickname, a media key, a chat line must look like;
//! * `interests`: what an interest must look like, and how it is
//!   normalised.

#![warn(missing_docs, unreachable_pub)]

mod admin;
mod error;
mod events;
mod interests;
mod moderation;
mod pairing;
mod rules;
mod users;

#[doc(hidden)]
pub mod fuzzing;

pub use admin::{
    AdminEvent, AdminInterests, AdminMedia, AdminPair, AdminPairs, AdminStreamEvent, AdminUser,
    AdminUsers, ConfFile, Health, MediaCall, MediaCounters, MetricsHistory, MetricsSample,
    RelayFigures, SipConf, TagCount,
};
pub use error::{ErrorBody, ErrorDetail};
pub use events::{ClientEvent, ServerEvent, WS_BEARER_PREFIX, WS_PROTOCOL};
pub use interests::{
    normalize_interest, normalize_interests, split_interests, InterestError, INTEREST_MAX_LEN,
    INTEREST_MIN_LEN, INTEREST_RULE, MAX_INTERESTS,
};
pub use moderation::{
    AdmitRequest, AdmitResponse, Ban, BanRequest, Bans, LobbySay, Report, ReportRequest, Reports,
};
pub use pairing::{
    LeaveReason, MeResponse, PeerInfo, PeerResponse, RequestedStatus, Role, SetStatusRequest,
    Status,
};
pub use rules::{
    validate_media_key, validate_name, validate_text, NameError, TextError, LOBBY_MAX_LEN,
    MEDIA_KEY_LEN, NAME_MAX_LEN, NAME_MIN_LEN, NAME_RULE, REPORT_MAX_LEN, RESERVED_NAMES,
};
pub use users::{CreateUserRequest, CreateUserResponse, RefreshRequest, SipCredentials, TokenPair};
