//! Pairing as a user drives it: set a status, wait for the partner,
//! report them.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use myturn_wire::{MeResponse, ReportRequest, SetStatusRequest};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, AuthUser};
use crate::core::cases::moderation::Report;
use crate::core::cases::status::{Interests, SetStatus};
use crate::node::AppState;

#[utoipa::path(
    put, path = "/v1/me/status", tag = "pairing", security(("bearer" = [])), request_body = SetStatusRequest,
    responses(
        (status = 200, description = "the status after the change", body = MeResponse),
        (status = 400, description = "a field refused: `invalid_body` (`media_key`, `interests` or their options without `ready`; `paired` or `in_call` asked for), `invalid_media_key`, `invalid_interests`, `interest_refused`", body = myturn_wire::ErrorBody),
        (status = 401, description = "no, bad, expired or revoked token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 409, description = "`ready_to_talk` while not paired (`not_paired`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn set_status(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<SetStatusRequest>,
) -> Result<Json<MeResponse>, ApiError> {
    if req.interests.is_none() && (req.interest_wait.is_some() || req.only_interests) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "interest_wait and only_interests go with interests",
        ));
    }
    let me = state
        .run(SetStatus {
            uid: user.id,
            status: req.status,
            media_key: req.media_key,
            interests: req.interests.map(|tags| Interests {
                tags,
                wait_secs: req.interest_wait,
                only: req.only_interests,
            }),
        })
        .await?;
    tracing::debug!(name = %user.name, status = %me.status, interests = ?me.interests, "status changed");
    Ok(Json(me))
}
/// `GET /v1/me/peer` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerQuery {
    /// Long-poll: wait up to this many seconds for a partner.
    #[serde(default)]
    pub wait: u64,
}

#[utoipa::path(
    get, path = "/v1/me/peer", tag = "pairing", security(("bearer" = [])), params(("wait" = Option<u64>, Query, description = "long-poll up to this many seconds")),
    responses(
        (status = 200, description = "the partner", body = myturn_wire::PeerResponse),
        (status = 204, description = "no partner (yet)"),
        (status = 400, description = "a bad query: `wait` not a number, or another parameter (`invalid_query`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no, bad, expired or revoked token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 409, description = "not looking for a partner: status `busy` (`not_ready`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn peer(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<PeerQuery>,
) -> Result<Response, ApiError> {
    let wait = Duration::from_secs(q.wait).min(state.settings.max_wait);
    match state.wait_for_peer(user.id, wait).await? {
        Some(found) => Ok(Json(found).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[utoipa::path(
    post, path = "/v1/me/report", tag = "moderation", security(("bearer" = [])), request_body = ReportRequest,
    responses(
        (status = 201, description = "filed"),
        (status = 400, description = "a reason that breaks the text rule (`invalid_text`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no, bad, expired or revoked token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 409, description = "no partner to report, now or before (`no_partner`)", body = myturn_wire::ErrorBody),
        (status = 429, description = "this user reports too often (`rate_limited`)", body = myturn_wire::ErrorBody, headers(("Retry-After" = u64, description = "seconds until a retry can succeed"))),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn report(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<ReportRequest>,
) -> Result<StatusCode, ApiError> {
    let reported = state
        .run(Report {
            uid: user.id,
            reason: req.reason,
        })
        .await?;
    tracing::info!(reporter = %user.name, %reported, "user reported");
    state.metrics.reports.fetch_add(1, Relaxed);
    Ok(StatusCode::CREATED)
}
