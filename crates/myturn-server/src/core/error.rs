//! Why a use case was refused: [`CoreError`], one typed variant per
//! reason. The HTTP layer maps each to its status in one place
//! (`http::error`); a WebSocket answers it as an `error` event carrying
//! [`CoreError::code`].

use std::time::Duration;

use myturn_wire::{InterestError, NameError, ServerEvent, TextError};

use super::tokens::TokenError;

/// Said when the session behind a valid token has ended.
pub(crate) const SESSION_ENDED: &str =
    "this session has ended (logged out, kicked, expired or revoked); register again";

/// What is rate-limited, as a refusal says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Registrations or refreshes from one address, reports by one user.
    Requests,
    /// Lobby chat lines from one user.
    LobbyLines,
}

/// Why a use case was refused. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The name is in use (compared case-insensitively).
    #[error("the name {0:?} is taken; pick another one")]
    NameTaken(String),
    /// The server holds its most users already.
    #[error("the server is full ({0} users); try again later")]
    Full(usize),
    /// Every extension in the range is in use.
    #[error("no free extension left")]
    NoExtension,
    /// `GET /v1/me/peer` by a user who is not looking for a partner.
    #[error("you are not ready: set your status to \"ready\" first")]
    NotReady,
    /// `ready_to_talk` by a user who is not paired.
    #[error("you are not paired: \"ready_to_talk\" is only allowed once paired")]
    NotPaired,
    /// The nickname breaks the rule.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A body field that is not acceptable in this request.
    #[error("{0}")]
    InvalidBody(String),
    /// The media key fingerprint is malformed.
    #[error("{0}")]
    InvalidMediaKey(String),
    /// A chat line or report text breaks the text rule.
    #[error(transparent)]
    InvalidText(#[from] TextError),
    /// An interest breaks the rule (the error names it).
    #[error(transparent)]
    InvalidInterests(#[from] InterestError),
    /// An interest the operator refuses (`--interest-blocklist`).
    #[error("the interest {0:?} is not allowed on this server; pick another one")]
    InterestRefused(String),
    /// The token is good, but its session has ended.
    #[error("{}", SESSION_ENDED)]
    SessionEnded,
    /// The token is good, but its user left meanwhile.
    #[error("your session has ended (logged out, kicked or expired); register again")]
    UserGone,
    /// A token of another session was presented to extend this one.
    #[error("that token belongs to another session")]
    OtherSession,
    /// An access or refresh token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Over a rate limit.
    #[error("{}", rate_message(*.limit, *.retry_after))]
    RateLimited {
        /// What was limited.
        limit: Limit,
        /// When a retry can succeed.
        retry_after: Duration,
    },
    /// The name is banned.
    #[error("this name is banned for another {remaining_secs} s")]
    Banned {
        /// Seconds until the ban ends.
        remaining_secs: u64,
    },
    /// No such user or ban (an admin's request).
    #[error("{0}")]
    NotFound(String),
    /// The lobby chat is for users waiting for a partner.
    #[error("the lobby chat is for users waiting for a partner (status \"ready\")")]
    NotInLobby,
    /// A report without anyone to report.
    #[error("you have had no partner to report yet")]
    NoPartner,
    /// Admission is open: there is no waiting room.
    #[error("admission is open (start with --admission moderated to use the waiting room)")]
    NotModerated,
}

fn rate_message(limit: Limit, retry_after: Duration) -> String {
    match limit {
        Limit::Requests => format!(
            "too many requests; retry in {} s",
            retry_after.as_secs().max(1)
        ),
        Limit::LobbyLines => {
            format!("too many messages; wait {:.1} s", retry_after.as_secs_f64())
        }
    }
}

impl CoreError {
    /// The stable code, as the error body and an `error` event carry it.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::NameTaken(_) => "name_taken",
            CoreError::Full(_) | CoreError::NoExtension => "unavailable",
            CoreError::NotReady => "not_ready",
            CoreError::NotPaired => "not_paired",
            CoreError::InvalidName(_) => "invalid_name",
            CoreError::InvalidBody(_) => "invalid_body",
            CoreError::InvalidMediaKey(_) => "invalid_media_key",
            CoreError::InvalidText(_) => "invalid_text",
            CoreError::InvalidInterests(_) => "invalid_interests",
            CoreError::InterestRefused(_) => "interest_refused",
            CoreError::SessionEnded
            | CoreError::UserGone
            | CoreError::OtherSession
            | CoreError::Token(_) => "unauthorized",
            CoreError::RateLimited { .. } => "rate_limited",
            CoreError::Banned { .. } => "banned",
            CoreError::NotFound(_) => "not_found",
            CoreError::NotInLobby => "not_in_lobby",
            CoreError::NoPartner => "no_partner",
            CoreError::NotModerated => "not_moderated",
        }
    }

    /// As an `error` event for a WebSocket.
    pub fn to_event(&self) -> ServerEvent {
        ServerEvent::Error {
            code: self.code().into(),
            message: self.to_string(),
        }
    }
}
