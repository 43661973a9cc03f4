//! Request guards: who is asking. [`ClientIp`] (the TCP peer, or the
//! client a trusted proxy names), [`AuthUser`] (a user's access token) and
//! [`Admin`] (the admin token), with the token checks written once, for
//! HTTP handlers and the event streams alike.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::registry::UserId;
use crate::state::AppState;

/// The client's IP address (unspecified when not served over TCP, as in
/// `oneshot` tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    /// The TCP peer, or, when the peer is a trusted proxy
    /// (`--trusted-proxy`), the client it names in `Forwarded` or
    /// `X-Forwarded-For`.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientIp(crate::proxy::client_ip(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// The authenticated user of a `/v1/me…` request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The registration.
    pub id: UserId,
    /// The nickname.
    pub name: String,
}

fn token_of(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
    })?;
    value.to_str().ok().and_then(bearer).ok_or_else(|| {
        ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
    })
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let result = (|| {
            let claims = state
                .jwt
                .verify(token_of(parts)?)
                .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
            let mut core = state.core();
            if !core.sessions.is_live(claims.sid, claims.uid) {
                return Err(ApiError::Unauthorized(
                    "this session has ended (logged out, kicked, expired or revoked); register again".into(),
                ));
            }
            core.reg.touch(claims.uid, Instant::now())?;
            Ok(AuthUser {
                id: claims.uid,
                name: claims.sub,
            })
        })();
        if result.is_err() {
            state.metrics.auth_failures.fetch_add(1, Relaxed);
        }
        result
    }
}

/// An admin request (checked against the admin token).
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Answer "disabled" before asking for a token that cannot work.
        if state.admin.is_none() {
            return verify_admin(state, "");
        }
        verify_admin(state, token_of(parts)?)
    }
}

/// Checks an admin token (HTTP header or WebSocket subprotocol).
pub(crate) fn verify_admin(state: &AppState, token: &str) -> Result<Admin, ApiError> {
    let Some(admin) = &state.admin else {
        return Err(ApiError::Forbidden(
            "the admin API is disabled: start the server with MYTURN_ADMIN_TOKEN or --admin-token-file".into(),
        ));
    };
    if admin.matches(token) {
        Ok(Admin)
    } else {
        state.metrics.auth_failures.fetch_add(1, Relaxed);
        Err(ApiError::Unauthorized("invalid admin token".into()))
    }
}
