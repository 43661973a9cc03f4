//! Users and sessions: register, authenticate, reauth, refresh, me, log
//! out.

use std::net::IpAddr;

use myturn_wire::{
    validate_name, AdminEvent, CreateUserResponse, LeaveReason, MeResponse, SipCredentials, Status,
    TokenPair,
};

use crate::core::context::Ctx;
use crate::core::effects::Delivery;
use crate::core::error::{CoreError, Limit};
use crate::core::rules::{admin, limits, liveness, sessions, users};
use crate::core::state::{name_key, LimitKey, UserId};
use crate::core::tokens::{Claims, TokenError};
use crate::core::usecase::UseCase;

/// Takes one token from a per-request rate limit.
pub(crate) fn limit(cx: &mut Ctx<'_>, key: LimitKey, what: Limit) -> Result<(), CoreError> {
    let enabled = cx.cfg().rate_limits;
    limits::check(cx.st, enabled, key, cx.now.unix_ms).map_err(|retry_after| {
        CoreError::RateLimited {
            limit: what,
            retry_after,
        }
    })
}

/// `POST /v1/users`: a new user with their own SIP account and a session.
/// Refused while the name is taken or banned, the server is full, or `ip`
/// registers too often.
#[derive(Debug, Clone)]
pub struct Register {
    /// The nickname asked for.
    pub name: String,
    /// Who asks.
    pub ip: IpAddr,
}

impl UseCase for Register {
    type Output = CreateUserResponse;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<CreateUserResponse, CoreError> {
        let Register { name, ip } = self;
        validate_name(&name)?;
        limit(cx, LimitKey::Register(ip), Limit::Requests)?;
        let now = cx.now.unix();
        if let Some(until) = cx.st.ban_until(&name_key(&name)).filter(|&u| u > now) {
            return Err(CoreError::Banned {
                remaining_secs: until - now,
            });
        }
        let id = users::add(cx, &name)?;
        let user = cx.st.user(id).ok_or(CoreError::UserGone)?;
        let (name, extension, password) =
            (user.name.clone(), user.extension, user.sip_password.clone());
        let (family, refresh_token) = sessions::open(cx.st, id, &mut *cx.token_rng);
        cx.fx.deliveries.push(Delivery::Joined(id));
        admin::tell_user(cx, id, |user| AdminEvent::UserRegistered { user });
        cx.fx.pbx_changed = true;
        Ok(CreateUserResponse {
            token: cx.rules.jwt.issue(&name, id, family, now),
            refresh_token,
            expires_in: cx.cfg().token_ttl,
            sip: SipCredentials {
                username: name.clone(),
                password,
                extension: extension.to_string(),
                domain: cx.cfg().sip_domain.clone(),
            },
            name,
        })
    }
}

/// An authenticated session: who holds a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The registration.
    pub uid: UserId,
    /// The nickname.
    pub name: String,
    /// The session family.
    pub family: u64,
    /// When the token expires, Unix seconds.
    pub exp: u64,
    /// The user's status now.
    pub status: Status,
}

/// The one session check, for an access token whose signature and expiry
/// were verified (that needs no state, so the caller does it first): the
/// family must be live and the user still there. Counts as activity for
/// the lease.
#[derive(Debug, Clone)]
pub struct Authenticate {
    /// The verified claims.
    pub claims: Claims,
}

impl UseCase for Authenticate {
    type Output = Session;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Session, CoreError> {
        let claims = self.claims;
        if !sessions::is_live(cx.st, claims.sid, claims.uid) {
            return Err(CoreError::SessionEnded);
        }
        liveness::touch(cx.st, claims.uid, cx.now.unix_ms)?;
        let status = cx.st.user(claims.uid).ok_or(CoreError::UserGone)?.status;
        Ok(Session {
            uid: claims.uid,
            name: claims.sub,
            family: claims.sid,
            exp: claims.exp,
            status,
        })
    }
}

/// A token presented on `uid`'s open stream to extend it: valid (claims
/// verified by the caller), and of the same user. Answers its expiry.
#[derive(Debug, Clone)]
pub struct Reauth {
    /// Whose stream.
    pub uid: UserId,
    /// The new token's verified claims.
    pub claims: Claims,
}

impl UseCase for Reauth {
    type Output = u64;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<u64, CoreError> {
        let session = Authenticate {
            claims: self.claims,
        }
        .apply(cx)?;
        if session.uid != self.uid {
            return Err(CoreError::OtherSession);
        }
        Ok(session.exp)
    }
}

/// `POST /v1/session/refresh`: spends a refresh token for a new pair. A
/// spent token presented again revokes its whole family (its open streams
/// close) and fails with [`TokenError::RefreshReused`] (naming whose).
#[derive(Clone)]
pub struct Refresh {
    /// The refresh token presented.
    pub token: String,
    /// Who presents it.
    pub ip: IpAddr,
}

impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresh")
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

impl UseCase for Refresh {
    type Output = TokenPair;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<TokenPair, CoreError> {
        limit(cx, LimitKey::Refresh(self.ip), Limit::Requests)?;
        let (uid, family, refresh_token) =
            match sessions::rotate(cx.st, &self.token, &mut *cx.token_rng) {
                sessions::Rotated::Next { uid, family, token } => (uid, family, token),
                sessions::Rotated::Refused { error, revoked } => {
                    if let (TokenError::RefreshReused { .. }, Some(f)) = (&error, revoked) {
                        cx.fx.deliveries.push(Delivery::FamilyRevoked(f));
                    }
                    return Err(error.into());
                }
            };
        let name = cx.st.user(uid).ok_or(CoreError::UserGone)?.name.clone();
        liveness::touch(cx.st, uid, cx.now.unix_ms)?;
        Ok(TokenPair {
            token: cx.rules.jwt.issue(&name, uid, family, cx.now.unix()),
            refresh_token,
            expires_in: cx.cfg().token_ttl,
        })
    }
}

/// `GET /v1/me`.
#[derive(Debug, Clone)]
pub struct Me {
    /// Who asks.
    pub uid: UserId,
}

impl UseCase for Me {
    type Output = MeResponse;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<MeResponse, CoreError> {
        me(cx, self.uid)
    }
}

/// What `GET /v1/me` answers for `uid`.
pub(crate) fn me(cx: &Ctx<'_>, uid: UserId) -> Result<MeResponse, CoreError> {
    let u = cx.st.user(uid).ok_or(CoreError::UserGone)?;
    Ok(MeResponse {
        name: u.name.clone(),
        status: u.status,
        extension: u.extension.to_string(),
        interests: u.interests.clone(),
    })
}

/// `DELETE /v1/me`: the user leaves everywhere. Answers the name.
#[derive(Debug, Clone)]
pub struct Logout {
    /// Who leaves.
    pub uid: UserId,
}

impl UseCase for Logout {
    type Output = String;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<String, CoreError> {
        users::remove(cx, self.uid, LeaveReason::LoggedOut, None)
    }
}
