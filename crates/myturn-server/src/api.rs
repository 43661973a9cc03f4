//! The HTTP API: routes, handlers and extractors. See `docs/api.md`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Request, State,
};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use myturn_wire::{
    AdminPairs, AdminUsers, AdmitRequest, AdmitResponse, Ban, BanRequest, Bans, ConfFile,
    CreateUserRequest, CreateUserResponse, Health, LobbySay, MeResponse, RefreshRequest,
    ReportRequest, Reports, ServerEvent, SetStatusRequest, SipConf, TokenPair,
};
use serde::Deserialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::TokenError;
use crate::core::{Admit, CoreError, Speaker};
use crate::error::{ApiError, ErrorCode};
use crate::events::{admin_events, lobby_say, user_events};
use crate::pbx::sync::{Readiness, READY_WAIT};
use crate::state::AppState;

pub(crate) use crate::error::BODY_LIMIT;
pub(crate) use crate::guard::{Admin, AuthUser, ClientIp};

/// A JSON body whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub T);

/// A query string whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

/// Builds the router.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/users", post(create_user))
        .route("/v1/me", get(me).delete(logout))
        .route("/v1/me/status", put(set_status))
        .route("/v1/me/peer", get(peer))
        .route("/v1/me/report", post(report))
        .route("/v1/events", get(user_events))
        .route("/v1/session/refresh", post(refresh))
        .route("/v1/admin/events", get(admin_events))
        .route("/v1/admin/admit", post(admin_admit))
        .route("/v1/admin/lobby", post(admin_lobby))
        .route("/v1/admin/reports", get(admin_reports))
        .route("/v1/admin/bans", get(admin_bans).post(admin_ban))
        .route("/v1/admin/bans/{name}", delete(admin_unban))
        .route("/v1/admin/users", get(admin_users))
        .route("/v1/admin/users/{name}", delete(admin_kick))
        .route("/v1/admin/pairs", get(admin_pairs))
        .route("/v1/admin/sip-conf", get(admin_sip_conf))
        .route("/v1/admin/media", get(admin_media))
        .route("/v1/admin/history", get(admin_history))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/admin", get(crate::console::page))
        .route("/admin/app.js", get(crate::console::script))
        .route("/admin/app.css", get(crate::console::style))
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
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.count_http(&method, &route, resp.status().as_u16());
    // Refusals are counted here, once, whichever guard or use case refused.
    if resp.status() == StatusCode::UNAUTHORIZED {
        m.auth_failures.fetch_add(1, Relaxed);
    }
    if resp.extensions().get::<ErrorCode>() == Some(&ErrorCode("rate_limited")) {
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

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUserRequest, responses((status = 201, description = "registered: tokens and SIP credentials", body = CreateUserResponse), (status = 400, description = "invalid name", body = myturn_wire::ErrorBody), (status = 403, description = "name banned", body = myturn_wire::ErrorBody), (status = 409, description = "name taken", body = myturn_wire::ErrorBody), (status = 429, description = "rate limited", body = myturn_wire::ErrorBody), (status = 503, description = "server full or PBX not ready", body = myturn_wire::ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<CreateUserResponse>), ApiError> {
    let resp = state.store.register(req.name, ip, state.now()).await?;
    let generation = state.pbx.generation();
    // The client may send its SIP REGISTER the moment this answer arrives:
    // answer once the PBX can authenticate the account (bounded). If it
    // cannot in time, answer anyway; the client retries its REGISTER.
    match state.pbx.wait_ready(generation, READY_WAIT).await {
        Readiness::Loaded | Readiness::NoSync => {}
        Readiness::Failed(error) => tracing::warn!(
            name = %resp.name,
            %error,
            "answering registration before the PBX took the account: sync failed"
        ),
        Readiness::TimedOut => tracing::warn!(
            name = %resp.name,
            waited = ?READY_WAIT,
            "answering registration before the PBX took the account: still reloading"
        ),
    }
    state.metrics.registrations.fetch_add(1, Relaxed);
    tracing::info!(name = %resp.name, extension = %resp.sip.extension, "user registered");
    Ok((StatusCode::CREATED, Json(resp)))
}

#[utoipa::path(get, path = "/v1/me", tag = "users", security(("bearer" = [])), responses((status = 200, body = MeResponse), (status = 400, description = "bad input", body = myturn_wire::ErrorBody), (status = 401, description = "no, bad, expired or revoked token", body = myturn_wire::ErrorBody)))]
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<MeResponse>, ApiError> {
    Ok(Json(state.store.me(user.id).await?))
}

#[utoipa::path(delete, path = "/v1/me", tag = "users", security(("bearer" = [])), responses((status = 204, description = "logged out everywhere"), (status = 400, description = "bad input", body = myturn_wire::ErrorBody), (status = 401, description = "no, bad, expired or revoked token", body = myturn_wire::ErrorBody)))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    state.store.logout(user.id).await?;
    // Answer once the PBX no longer authenticates or routes to the user
    // (bounded like registration): a call placed right after the logout
    // answer must not ring the departed client.
    let generation = state.pbx.generation();
    let _ = state.pbx.wait_ready(generation, READY_WAIT).await;
    state.metrics.logouts.fetch_add(1, Relaxed);
    tracing::info!(name = %user.name, "user logged out");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/v1/me/status", tag = "pairing", security(("bearer" = [])), request_body = SetStatusRequest, responses((status = 200, body = MeResponse), (status = 400, description = "bad input", body = myturn_wire::ErrorBody), (status = 401, description = "no, bad, expired or revoked token", body = myturn_wire::ErrorBody), (status = 409, description = "not allowed now", body = myturn_wire::ErrorBody)))]
async fn set_status(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<SetStatusRequest>,
) -> Result<Json<MeResponse>, ApiError> {
    let me = state
        .store
        .set_status(user.id, req.status, req.media_key, state.now())
        .await?;
    tracing::debug!(name = %user.name, status = %me.status, "status changed");
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

#[utoipa::path(get, path = "/v1/me/peer", tag = "pairing", security(("bearer" = [])), params(("wait" = Option<u64>, Query, description = "long-poll up to this many seconds")), responses((status = 200, description = "the partner", body = myturn_wire::PeerResponse), (status = 204, description = "no partner (yet)"), (status = 400, description = "bad input", body = myturn_wire::ErrorBody), (status = 401, description = "no, bad, expired or revoked token", body = myturn_wire::ErrorBody)))]
async fn peer(
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

#[utoipa::path(post, path = "/v1/session/refresh", tag = "users", request_body = RefreshRequest, responses((status = 200, body = TokenPair), (status = 401, description = "unknown, spent or expired refresh token", body = myturn_wire::ErrorBody), (status = 429, description = "rate limited", body = myturn_wire::ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    match state
        .store
        .refresh(req.refresh_token, ip, state.now())
        .await
    {
        Ok(pair) => Ok(Json(pair)),
        Err(e) => {
            if e == CoreError::Token(TokenError::RefreshReused) {
                state.metrics.refresh_reuse.fetch_add(1, Relaxed);
                tracing::warn!(security = true, client = %ip, "spent refresh token presented again: session family revoked");
            }
            Err(e.into())
        }
    }
}

#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("admin" = [])), responses((status = 200, body = AdminUsers), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_users(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<AdminUsers>, ApiError> {
    Ok(Json(state.store.users().await?))
}

#[utoipa::path(get, path = "/v1/admin/pairs", tag = "admin", security(("admin" = [])), responses((status = 200, body = AdminPairs), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_pairs(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<AdminPairs>, ApiError> {
    Ok(Json(state.store.pairs().await?))
}

#[utoipa::path(get, path = "/v1/admin/sip-conf", tag = "admin", security(("admin" = [])), responses((status = 200, body = SipConf), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_sip_conf(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<SipConf>, ApiError> {
    let users = state.store.pbx_users().await?;
    let files = state
        .pbx
        .render_redacted(&users)
        .into_iter()
        .map(|f| ConfFile {
            name: f.name.to_owned(),
            content: f.content,
        })
        .collect();
    Ok(Json(SipConf {
        pbx: state.pbx.name().to_owned(),
        files,
    }))
}

#[utoipa::path(get, path = "/v1/admin/media", tag = "admin", security(("admin" = [])), responses((status = 200, body = myturn_wire::AdminMedia), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_media(State(state): State<AppState>, _: Admin) -> Json<myturn_wire::AdminMedia> {
    use myturn_wire::{AdminMedia, MediaCall, MediaCounters};
    let figures = state.pbx_figures();
    let (Some(m), Some((st, _, _))) = (figures.media, figures.sip) else {
        return Json(AdminMedia {
            mode: "none".into(),
            ports_free: 0,
            ports_capacity: 0,
            packets: 0,
            bytes: 0,
            dropped: 0,
            exhausted: 0,
            calls: Vec::new(),
        });
    };
    let counters = |s: myturn_pbx::relay::LegStats| MediaCounters {
        packets: s.packets,
        bytes: s.bytes,
        dropped: s.dropped,
    };
    let calls = m
        .calls
        .iter()
        .map(|c| {
            let relayed = m.relayed.iter().find(|r| r.id == c.id);
            let (caller, callee) = match relayed {
                Some(r) => (counters(r.legs[0]), counters(r.legs[1])),
                None => (
                    MediaCounters {
                        packets: c.totals.packets,
                        bytes: c.totals.bytes,
                        dropped: c.totals.errors,
                    },
                    MediaCounters::default(),
                ),
            };
            MediaCall {
                id: c.id,
                sip_call_id: c.call_id.clone(),
                ports: c.ports,
                caller,
                callee,
            }
        })
        .collect();
    Json(AdminMedia {
        mode: m.mode.to_owned(),
        ports_free: m.ports_free as u64,
        ports_capacity: m.ports_capacity as u64,
        packets: m.totals.0,
        bytes: m.totals.1,
        dropped: m.totals.2,
        exhausted: st.media_exhausted,
        calls,
    })
}

#[utoipa::path(get, path = "/v1/admin/history", tag = "admin", security(("admin" = [])), responses((status = 200, body = myturn_wire::MetricsHistory), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_history(
    State(state): State<AppState>,
    _: Admin,
) -> Json<myturn_wire::MetricsHistory> {
    let samples = state
        .metrics
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    Json(myturn_wire::MetricsHistory {
        every_secs: crate::metrics::HISTORY_EVERY.as_secs(),
        samples,
    })
}

#[utoipa::path(delete, path = "/v1/admin/users/{name}", tag = "admin", security(("admin" = [])), params(("name" = String, Path)), responses((status = 204, description = "kicked"), (status = 404, description = "no such user", body = myturn_wire::ErrorBody), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_kick(
    State(state): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let kicked = state.store.kick(name).await?;
    state.metrics.kicks.fetch_add(1, Relaxed);
    tracing::info!(name = %kicked, "user kicked by an admin");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/me/report", tag = "moderation", security(("bearer" = [])), request_body = ReportRequest, responses((status = 204, description = "filed"), (status = 400, description = "bad input", body = myturn_wire::ErrorBody), (status = 401, description = "no, bad, expired or revoked token", body = myturn_wire::ErrorBody), (status = 409, description = "no partner to report", body = myturn_wire::ErrorBody), (status = 429, description = "rate limited", body = myturn_wire::ErrorBody)))]
async fn report(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<ReportRequest>,
) -> Result<StatusCode, ApiError> {
    let reported = state.store.report(user.id, req.reason, state.now()).await?;
    tracing::info!(reporter = %user.name, %reported, "user reported");
    state.metrics.reports.fetch_add(1, Relaxed);
    Ok(StatusCode::CREATED)
}

#[utoipa::path(post, path = "/v1/admin/admit", tag = "moderation", security(("admin" = [])), request_body = AdmitRequest, responses((status = 200, body = AdmitResponse), (status = 404, description = "not waiting", body = myturn_wire::ErrorBody), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_admit(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<AdmitRequest>,
) -> Result<Json<AdmitResponse>, ApiError> {
    let who = match (req.name, req.all) {
        (Some(name), false) => Admit::One(name),
        (None, true) => Admit::All,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "send either {\"name\": ...} or {\"all\": true}",
            ))
        }
    };
    let admitted = state.store.admit(who, state.now()).await?;
    tracing::info!(count = admitted.len(), "users admitted");
    Ok(Json(AdmitResponse { admitted }))
}

#[utoipa::path(post, path = "/v1/admin/lobby", tag = "moderation", security(("admin" = [])), request_body = LobbySay, responses((status = 202, description = "queued to the waiting room"), (status = 400, description = "bad text", body = myturn_wire::ErrorBody), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_lobby(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<LobbySay>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    match lobby_say(&state, Speaker::Moderator, req.text).await {
        Ok(n) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "delivered": n })),
        )),
        Err(ServerEvent::Error { message, .. }) => {
            Err(ApiError::bad_request("invalid_text", message))
        }
        Err(_) => Err(ApiError::bad_request("invalid_text", "refused")),
    }
}

#[utoipa::path(get, path = "/v1/admin/reports", tag = "moderation", security(("admin" = [])), responses((status = 200, body = Reports), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_reports(State(state): State<AppState>, _: Admin) -> Result<Json<Reports>, ApiError> {
    Ok(Json(state.store.reports().await?))
}

#[utoipa::path(get, path = "/v1/admin/bans", tag = "moderation", security(("admin" = [])), responses((status = 200, body = Bans), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_bans(State(state): State<AppState>, _: Admin) -> Result<Json<Bans>, ApiError> {
    Ok(Json(state.store.bans(state.now()).await?))
}

#[utoipa::path(post, path = "/v1/admin/bans", tag = "moderation", security(("admin" = [])), request_body = BanRequest, responses((status = 201, body = Ban), (status = 400, description = "bad name or duration", body = myturn_wire::ErrorBody), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_ban(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<BanRequest>,
) -> Result<(StatusCode, Json<Ban>), ApiError> {
    let (ban, online) = state.store.ban(req.name, req.seconds, state.now()).await?;
    state.metrics.bans.fetch_add(1, Relaxed);
    tracing::info!(name = %ban.name, seconds = req.seconds, online, "name banned");
    Ok((StatusCode::CREATED, Json(ban)))
}

#[utoipa::path(delete, path = "/v1/admin/bans/{name}", tag = "moderation", security(("admin" = [])), params(("name" = String, Path)), responses((status = 204, description = "lifted"), (status = 404, description = "not banned", body = myturn_wire::ErrorBody), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody), (status = 403, description = "admin API disabled (no --admin-token)", body = myturn_wire::ErrorBody)))]
async fn admin_unban(
    State(state): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.unban(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let pbx = state.pbx.status();
    let users = state.store.user_count().await.unwrap_or(0) as u64;
    Json(Health {
        status: if pbx.in_sync { "ok" } else { "degraded" }.into(),
        pbx: state.pbx.name().into(),
        pbx_in_sync: pbx.in_sync,
        pbx_error: pbx.last_error,
        users,
        tls: state.settings.tls,
        warning: state.settings.warning.clone(),
    })
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "this document", content_type = "application/json")))]
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(&state.gauges().await, &state.pbx_figures());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
