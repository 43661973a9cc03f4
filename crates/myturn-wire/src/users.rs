//! Users and their sessions: registering a nickname, the SIP account the
//! server hands out, and refreshing the tokens. Secrets stay out of
//! `Debug`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `POST /v1/users`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The nickname; see [`validate_name`](crate::validate_name).
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

#[cfg(test)]
mod tests {
    use super::*;

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
