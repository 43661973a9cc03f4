//! Extractors: the request's parts a handler takes, each refusing with an
//! [`ApiError`]. [`ApiJson`], [`ApiPath`] and [`ApiQuery`] (bodies, path
//! parameters and queries),
//! [`ClientIp`] (the TCP peer, or the client a trusted proxy names),
//! [`AuthUser`] (a user's access token, checked once through the store)
//! and [`Admin`] (the admin token).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::request::Parts;

use super::credentials::{check_admin, presented_token, Carrier};
use super::error::ApiError;
use crate::core::UserId;
use crate::node::AppState;

/// A JSON body whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub T);

/// A path parameter whose rejections (a percent-encoding that is not
/// UTF-8) are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub T);

/// A query string whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

/// The client's IP address (unspecified when not served over TCP, as in
/// `oneshot` tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub IpAddr);

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
        Ok(ClientIp(super::proxy::client_ip(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// The authenticated user of a `/v1/me…` request.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser {
    /// The registration.
    pub id: UserId,
    /// The nickname.
    pub name: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_token(&parts.headers, Carrier::Header)?;
        let session = state.authenticate(&token).await?;
        Ok(AuthUser {
            id: session.uid,
            name: session.name,
        })
    }
}

/// An admin request (checked against the admin token).
#[derive(Debug)]
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_admin(state.admin.as_ref(), &parts.headers, Carrier::Header)?;
        Ok(Admin)
    }
}
