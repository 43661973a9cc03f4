//! The admin API: users, pairs, the PBX and media views, history,
//! moderation (admit, lobby, reports, kicks, bans).

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use myturn_wire::{
    AdminInterests, AdminMedia, AdminPairs, AdminUsers, AdmitRequest, AdmitResponse,
    Ban as BanView, BanRequest, Bans as BanList, ConfFile, LobbySay, Reports as ReportList,
    SipConf,
};

use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath, ClientIp};
use crate::core::cases::moderation::{Admit, Ban, Banned, Kick, Unban};
use crate::core::cases::views::{Bans, Interests, Pairs, PbxUsers, Reports, Users};
use crate::core::Speaker;
use crate::node::metrics::HISTORY_EVERY;
use crate::node::AppState;

#[utoipa::path(
    get, path = "/v1/admin/users", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, body = AdminUsers),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_users(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<AdminUsers>, ApiError> {
    Ok(Json(state.run(Users).await?))
}

#[utoipa::path(
    get, path = "/v1/admin/pairs", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, body = AdminPairs),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_pairs(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<AdminPairs>, ApiError> {
    Ok(Json(state.run(Pairs).await?))
}

#[utoipa::path(
    get, path = "/v1/admin/sip-conf", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, body = SipConf),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_sip_conf(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<SipConf>, ApiError> {
    let users = state.run(PbxUsers).await?;
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

#[utoipa::path(
    get, path = "/v1/admin/media", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, body = myturn_wire::AdminMedia),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_media(State(state): State<AppState>, _: Admin) -> Json<AdminMedia> {
    Json(state.pbx.media())
}

#[utoipa::path(
    get, path = "/v1/admin/history", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, body = myturn_wire::MetricsHistory),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_history(
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
        every_secs: HISTORY_EVERY.as_secs(),
        samples,
    })
}

#[utoipa::path(
    delete, path = "/v1/admin/users/{name}", tag = "admin", security(("admin" = [])), params(("name" = String, Path)),
    responses(
        (status = 204, description = "kicked"),
        (status = 400, description = "a path parameter that is not UTF-8 (`invalid_path`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 404, description = "no such user (`not_found`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_kick(
    State(state): State<AppState>,
    _: Admin,
    ClientIp(ip): ClientIp,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let kicked = state.run(Kick { name }).await?;
    state.metrics.kicks.fetch_add(1, Relaxed);
    tracing::info!(name = %kicked, by = "admin", admin_client = %ip, "user kicked");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/v1/admin/admit", tag = "moderation", security(("admin" = [])), request_body = AdmitRequest,
    responses(
        (status = 200, body = AdmitResponse),
        (status = 400, description = "neither or both of `name` and `all` (`invalid_body`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 404, description = "no user of that name (`not_found`)", body = myturn_wire::ErrorBody),
        (status = 409, description = "admission is open: there is no waiting room (`not_moderated`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_admit(
    State(state): State<AppState>,
    _: Admin,
    ClientIp(ip): ClientIp,
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
    let admitted = state.run(who).await?;
    if !admitted.is_empty() {
        tracing::info!(
            names = %admitted.join(","),
            count = admitted.len(),
            by = "admin",
            admin_client = %ip,
            "users admitted"
        );
    }
    Ok(Json(AdmitResponse { admitted }))
}

#[utoipa::path(
    post, path = "/v1/admin/lobby", tag = "moderation", security(("admin" = [])), request_body = LobbySay,
    responses(
        (status = 202, description = "queued to the waiting room", body = LobbyDelivered),
        (status = 400, description = "a text that breaks the text rule (`invalid_text`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_lobby(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<LobbySay>,
) -> Result<(StatusCode, Json<LobbyDelivered>), ApiError> {
    let delivered = state.lobby_say(Speaker::Moderator, req.text).await?;
    Ok((StatusCode::ACCEPTED, Json(LobbyDelivered { delivered })))
}

/// `POST /v1/admin/lobby`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct LobbyDelivered {
    /// The event streams the line was queued to (the waiting users' and
    /// the admins').
    delivered: usize,
}

#[utoipa::path(
    get, path = "/v1/admin/reports", tag = "moderation", security(("admin" = [])),
    responses(
        (status = 200, body = ReportList),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_reports(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<ReportList>, ApiError> {
    Ok(Json(state.run(Reports).await?))
}

#[utoipa::path(
    get, path = "/v1/admin/bans", tag = "moderation", security(("admin" = [])),
    responses(
        (status = 200, body = BanList),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_bans(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<BanList>, ApiError> {
    Ok(Json(state.run(Bans).await?))
}

#[utoipa::path(
    post, path = "/v1/admin/bans", tag = "moderation", security(("admin" = [])), request_body = BanRequest,
    responses(
        (status = 201, body = BanView),
        (status = 400, description = "a bad name (`invalid_name`) or duration (`invalid_body`: `seconds` 1 to a year)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_ban(
    State(state): State<AppState>,
    _: Admin,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<BanRequest>,
) -> Result<(StatusCode, Json<BanView>), ApiError> {
    let Banned { ban, online } = state
        .run(Ban {
            name: req.name,
            seconds: req.seconds,
        })
        .await?;
    state.metrics.bans.fetch_add(1, Relaxed);
    tracing::info!(name = %ban.name, seconds = req.seconds, online, by = "admin", admin_client = %ip, "name banned");
    Ok((StatusCode::CREATED, Json(ban)))
}

#[utoipa::path(
    delete, path = "/v1/admin/bans/{name}", tag = "moderation", security(("admin" = [])), params(("name" = String, Path)),
    responses(
        (status = 204, description = "lifted"),
        (status = 400, description = "a path parameter that is not UTF-8 (`invalid_path`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 404, description = "not banned (`not_found`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_unban(
    State(state): State<AppState>,
    _: Admin,
    ClientIp(ip): ClientIp,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.run(Unban { name: name.clone() }).await?;
    tracing::info!(%name, by = "admin", admin_client = %ip, "ban lifted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/v1/admin/interests", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, body = AdminInterests),
        (status = 401, description = "no or bad admin token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn admin_interests(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<AdminInterests>, ApiError> {
    Ok(Json(state.run(Interests).await?))
}
