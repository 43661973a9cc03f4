//! Operations: `/healthz`, `/readyz` and `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use myturn_wire::Health;

use super::error::ApiError;
use crate::core::cases::views::UserCount;
use crate::node::AppState;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let pbx = state.pbx.status();
    let users = state.run(UserCount).await.unwrap_or(0) as u64;
    let state_error = state.store.error();
    Json(Health {
        status: if pbx.in_sync && state_error.is_none() {
            "ok"
        } else {
            "degraded"
        }
        .into(),
        pbx: state.pbx.name().into(),
        pbx_in_sync: pbx.in_sync,
        pbx_error: pbx.last_error,
        users,
        tls: state.settings.tls,
        warning: state.settings.warning.clone(),
        state: state.store.kind().into(),
        state_error,
        node: state.settings.node_id.clone(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "ready: the PBX holds the current state and the state store answers; body `{\"status\": \"ready\"}`"), (status = 503, description = "not ready: the state store does not answer (`state_unavailable`) or the PBX does not hold the current state yet (`unavailable`)", body = myturn_wire::ErrorBody)))]
pub(crate) async fn readyz(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    readiness(&state).await?;
    Ok(Json(serde_json::json!({ "status": "ready" })))
}

/// What `/readyz` answers, for systemd's `READY=1` too: `Ok` when the
/// state store answers and the PBX holds the current state.
pub(crate) async fn readiness(state: &AppState) -> Result<(), ApiError> {
    // One step of the store: it answers, or says why not.
    state.run(UserCount).await?;
    if let Some(e) = state.store.error() {
        return Err(ApiError::StoreUnavailable(e));
    }
    let pbx = state.pbx.status();
    if !pbx.in_sync {
        let why = pbx
            .last_error
            .unwrap_or_else(|| "its first sync has not finished".into());
        return Err(ApiError::Unavailable(format!(
            "the PBX ({}) does not hold the current state: {why}",
            state.pbx.name()
        )));
    }
    Ok(())
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4")))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    limits: Option<axum::Extension<std::sync::Arc<super::limits::HttpLimits>>>,
) -> Response {
    let mut text = state.metrics.render(&state.gauges().await, &state.pbx);
    if let Some(axum::Extension(l)) = limits {
        l.render(&mut text);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
