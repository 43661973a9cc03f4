//! Operations: `/healthz` and `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use myturn_wire::Health;

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
