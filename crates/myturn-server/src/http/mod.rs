//! The HTTP API: routes, extractors, the one mapping of refusals to
//! statuses, the WebSocket event streams, the OpenAPI document (and the
//! page that renders it, `/docs`) and the admin console. See
//! `docs/api.md`.
//!
//! A handler parses its request (the extractors in [`extract`]), runs one
//! use case through the node ([`AppState::run`]) and maps the answer:
//! every refusal leaves as `{"error": {"code", "message"}}` with the
//! status [`error`] gives it.

mod admin;
mod apidocs;
mod console;
mod credentials;
mod edge;
pub(crate) mod error;
mod events;
mod extract;
pub(crate) mod limits;
mod media;
pub(crate) mod openapi;
pub(crate) mod ops;
mod pairing;
mod proxy;
mod sip;
pub(crate) mod trail;
mod users;
mod webpage;
mod webrtc;

pub use credentials::bearer;
pub(crate) use credentials::fuzz_verify;
pub(crate) use media::fuzz_page_message;
pub(crate) use webrtc::fuzz_offer;

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::node::AppState;
use error::{ApiError, RateLimited, BODY_LIMIT};

/// Builds the router, behind the per-IP request limit `limits`.
pub(crate) fn router(state: AppState, limits: std::sync::Arc<limits::HttpLimits>) -> Router {
    Router::new()
        .route("/v1/users", post(users::create_user))
        .route("/v1/me", get(users::me).delete(users::logout))
        .route("/v1/me/status", put(pairing::set_status))
        .route("/v1/me/peer", get(pairing::peer))
        .route("/v1/me/report", post(pairing::report))
        .route("/v1/events", get(events::user_events))
        .route("/sip", get(sip::sip_websocket))
        .route("/media", get(media::media_websocket))
        .route("/media/webrtc", post(webrtc::media_webrtc))
        .route("/v1/session/refresh", post(users::refresh))
        .route("/v1/admin/events", get(events::admin_events))
        .route("/v1/admin/admit", post(admin::admin_admit))
        .route("/v1/admin/lobby", post(admin::admin_lobby))
        .route("/v1/admin/reports", get(admin::admin_reports))
        .route(
            "/v1/admin/bans",
            get(admin::admin_bans).post(admin::admin_ban),
        )
        .route("/v1/admin/bans/{name}", delete(admin::admin_unban))
        .route("/v1/admin/users", get(admin::admin_users))
        .route("/v1/admin/users/{name}", delete(admin::admin_kick))
        .route("/v1/admin/pairs", get(admin::admin_pairs))
        .route("/v1/admin/interests", get(admin::admin_interests))
        .route("/v1/admin/sip-conf", get(admin::admin_sip_conf))
        .route("/v1/admin/media", get(admin::admin_media))
        .route("/v1/admin/history", get(admin::admin_history))
        .route("/v1/admin/blocked", get(edge::admin_blocked))
        .route("/v1/admin/blocked/{ip}", delete(edge::admin_unblock))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/admin", get(console::page))
        .route("/admin/app.js", get(console::script))
        .route("/admin/app.css", get(console::style))
        .route("/", get(webpage::page))
        .route("/web/page.js", get(webpage::script))
        .route("/web/page.css", get(webpage::style))
        .route("/web/worklet.js", get(webpage::worklet))
        .route("/web/myturn_web.js", get(webpage::glue))
        .route("/web/myturn_web_bg.wasm", get(webpage::module))
        .route("/docs", get(apidocs::page))
        .route("/docs/app.js", get(apidocs::script))
        .route("/docs/app.css", get(apidocs::style))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            // Defence in depth only: no handler is expected to panic.
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(myturn_wire::ErrorBody::new(
                    "internal",
                    "internal error; it has been logged",
                )),
            )
                .into_response()
        }))
        // Outermost: a request over its IP's rate costs no routing, no
        // body and no trace span.
        .layer(middleware::from_fn_with_state(
            limits.clone(),
            limits::per_ip,
        ))
        .layer(axum::Extension(limits))
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let (client, started) = (trail::client_of(&req, &state), std::time::Instant::now());
    let resp = next.run(req).await;
    trail::answered(&state, client, &method, &route, resp.status(), started);
    let m = &state.metrics;
    m.count_http(&method, &route, resp.status().as_u16());
    // Refusals are counted here, once, whichever guard or use case refused.
    if resp.status() == StatusCode::UNAUTHORIZED {
        m.auth_failures.fetch_add(1, Relaxed);
    }
    if resp.extensions().get::<RateLimited>().is_some() {
        m.rate_limited.fetch_add(1, Relaxed);
    }
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see docs/api.md".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
