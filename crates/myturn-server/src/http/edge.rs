//! The SIP edge in the admin API: the sources the built-in PBX's flood
//! guard blocks now (`GET /v1/admin/blocked`: when, why, what they sent
//! since) and lifting a block (`DELETE /v1/admin/blocked/{ip}`).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::extract::{Admin, ApiPath};
use crate::node::AppState;

/// One blocked source.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct BlockedSource {
    /// The source IP.
    ip: String,
    /// `flood` (past `--sip-rate-limit`) or `auth_failures` (past
    /// `--sip-fail-limit`).
    reason: &'static str,
    /// When the block began, Unix seconds.
    since: u64,
    /// When it ends unless renewed (a flood that goes on renews it), Unix
    /// seconds.
    until: u64,
    /// Datagrams dropped from it since, unread.
    packets: u64,
    /// Their bytes.
    bytes: u64,
}

/// `GET /v1/admin/blocked`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct BlockedSources {
    /// Oldest block first (at most 1,000 listed).
    sources: Vec<BlockedSource>,
    /// How many are blocked in all.
    total: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[utoipa::path(
    get, path = "/v1/admin/blocked", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, body = BlockedSources),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_blocked(State(state): State<AppState>, _: Admin) -> Json<BlockedSources> {
    let Some(edge) = state.pbx.sip_edge() else {
        return Json(BlockedSources {
            sources: Vec::new(),
            total: 0,
        });
    };
    let sources = edge
        .blocked_sources()
        .into_iter()
        .map(|b| BlockedSource {
            ip: b.ip.to_string(),
            reason: b.reason,
            since: unix(b.since),
            until: unix(b.until),
            packets: b.packets,
            bytes: b.bytes,
        })
        .collect();
    Json(BlockedSources {
        sources,
        total: edge.figures().blocked as u64,
    })
}

#[utoipa::path(
    delete, path = "/v1/admin/blocked/{ip}", tag = "admin", security(("admin" = [])), params(("ip" = String, Path, description = "the source IP")),
    responses(
        (status = 204, description = "unblocked"),
        (status = 400, description = "not an IP address (`invalid_ip`), or not UTF-8 (`invalid_path`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 404, description = "not blocked, or no built-in PBX runs (`not_found`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_unblock(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(ip): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_ip", format!("{ip:?} is not an IP address")))?;
    let Some(edge) = state.pbx.sip_edge() else {
        return Err(ApiError::NotFound("no built-in PBX runs here".into()));
    };
    if edge.unblock(ip).await {
        tracing::info!(%ip, "SIP source unblocked by an admin");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("{ip} is not blocked")))
    }
}
