//! The users' own routes: register, who am I, log out, refresh.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use myturn_wire::{CreateUserRequest, CreateUserResponse, MeResponse, RefreshRequest, TokenPair};

use super::error::ApiError;
use super::extract::{ApiJson, AuthUser, ClientIp};
use crate::core::cases::account::{Logout, Me, Refresh, Register};
use crate::core::{CoreError, TokenError};
use crate::node::AppState;
use crate::pbx::sync::{Readiness, READY_WAIT};
use crate::store::StoreError;

#[utoipa::path(
    post, path = "/v1/users", tag = "users", request_body = CreateUserRequest,
    responses(
        (status = 201, description = "registered: tokens and SIP credentials", body = CreateUserResponse),
        (status = 400, description = "a name that breaks the rule (`invalid_name`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the name is banned (`banned`)", body = myturn_wire::ErrorBody),
        (status = 409, description = "the name is taken, in any case (`name_taken`)", body = myturn_wire::ErrorBody),
        (status = 429, description = "this client IP registers too often (`rate_limited`)", body = myturn_wire::ErrorBody, headers(("Retry-After" = u64, description = "seconds until a retry can succeed"))),
        (status = 503, description = "the server is full or has no free extension (`unavailable`), or the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<CreateUserResponse>), ApiError> {
    let resp = state.run(Register { name: req.name, ip }).await?;
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
    tracing::info!(name = %resp.name, client = %ip, extension = %resp.sip.extension, "user registered");
    Ok((StatusCode::CREATED, Json(resp)))
}

#[utoipa::path(
    get, path = "/v1/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, description = "no, bad, expired or revoked token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<MeResponse>, ApiError> {
    Ok(Json(state.run(Me { uid: user.id }).await?))
}

#[utoipa::path(
    delete, path = "/v1/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 204, description = "logged out everywhere"),
        (status = 401, description = "no, bad, expired or revoked token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    state.run(Logout { uid: user.id }).await?;
    // Answer once the PBX no longer authenticates or routes to the user
    // (bounded like registration): a call placed right after the logout
    // answer must not ring the departed client.
    let generation = state.pbx.generation();
    let _ = state.pbx.wait_ready(generation, READY_WAIT).await;
    state.metrics.logouts.fetch_add(1, Relaxed);
    tracing::info!(name = %user.name, "user logged out");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/v1/session/refresh", tag = "users", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "an unknown, spent or expired refresh token (`unauthorized`); a spent one revokes its whole session family", body = myturn_wire::ErrorBody),
        (status = 429, description = "this client IP refreshes too often (`rate_limited`)", body = myturn_wire::ErrorBody, headers(("Retry-After" = u64, description = "seconds until a retry can succeed"))),
        (status = 503, description = "the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let refresh = Refresh {
        token: req.refresh_token,
        ip,
    };
    match state.run(refresh).await {
        Ok(pair) => Ok(Json(pair)),
        Err(e) => {
            if let StoreError::Refused(CoreError::Token(TokenError::RefreshReused { user })) = &e {
                state.metrics.refresh_reuse.fetch_add(1, Relaxed);
                tracing::warn!(security = true, %user, client = %ip, "spent refresh token presented again: session family revoked");
            }
            Err(e.into())
        }
    }
}
