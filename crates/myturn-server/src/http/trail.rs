//! What each request leaves in the log: one line on the
//! [`REQUESTS`] target (off by default), and refused tokens, told once
//! per client and window through the node's
//! [`Refusals`](crate::node::refusals::Refusals).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;

use crate::node::refusals::Token;
use crate::node::AppState;

/// The per-request lines' target: `MYTURN_LOG=info,myturn::request=info`
/// turns them on.
pub(crate) const REQUESTS: &str = "myturn::request";

/// The client behind `req`, as [`ClientIp`](super::extract::ClientIp)
/// works it out.
pub(crate) fn client_of(req: &Request, state: &AppState) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    super::proxy::client_ip(peer, req.headers(), &state.settings.trusted_proxies)
}

/// Logs one answered request, and notes a refused token.
pub(crate) fn answered(
    state: &AppState,
    client: IpAddr,
    method: &str,
    route: &str,
    status: StatusCode,
    started: Instant,
) {
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        target: REQUESTS,
        %client,
        method,
        route,
        status = status.as_u16(),
        ms,
        "request"
    );
    if status == StatusCode::UNAUTHORIZED {
        let token = if route.starts_with("/v1/admin") {
            Token::Admin
        } else {
            Token::User
        };
        state.refusals.note(client, token, Instant::now());
    }
}
