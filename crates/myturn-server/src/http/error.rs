//! The API's error type. Every failure leaves as a JSON
//! `{"error": {"code", "message"}}` body with a 4xx status (5xx only for
//! "try again later" conditions, never for bad input).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use myturn_wire::ErrorBody;

/// Largest accepted request body, in bytes.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

use crate::core::CoreError;
use crate::store::StoreError;

/// Left in the extensions of an answer refused by a rate limit, for the
/// metrics layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimited;

/// An error answered to an HTTP client: a use case's refusal, or a
/// request the HTTP layer itself refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// A use case refused.
    #[error(transparent)]
    Refused(#[from] CoreError),
    /// The state store could not answer.
    #[error("{0}")]
    StoreUnavailable(String),
    /// A malformed request: bad JSON, an unknown field, a bad query.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// Missing or malformed credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such endpoint.
    #[error("{0}")]
    NotFound(String),
    /// Body over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Body that is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Method not allowed on this path.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// A temporary condition: the server holds all it can.
    #[error("{0}")]
    Unavailable(String),
    /// Too many event streams for this user.
    #[error("{0}")]
    TooManyConnections(String),
    /// A plain request to a WebSocket endpoint (or one asking for a
    /// WebSocket version other than 13): answered 426 with
    /// `Upgrade: websocket` and `Sec-WebSocket-Version: 13`.
    #[error("{0}")]
    UpgradeRequired(String),
}

/// The HTTP status of a use case's refusal: every refusal maps here, and
/// only here.
fn refusal_status(e: &CoreError) -> StatusCode {
    match e {
        CoreError::Full(_) | CoreError::NoExtension => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::SessionEnded
        | CoreError::UserGone
        | CoreError::OtherSession
        | CoreError::Token(_) => StatusCode::UNAUTHORIZED,
        CoreError::NameTaken(_)
        | CoreError::NotReady
        | CoreError::NotPaired
        | CoreError::NotInLobby
        | CoreError::NoPartner
        | CoreError::NotModerated => StatusCode::CONFLICT,
        CoreError::InvalidName(_)
        | CoreError::InvalidBody(_)
        | CoreError::InvalidMediaKey(_)
        | CoreError::InvalidText(_)
        | CoreError::InvalidInterests(_)
        | CoreError::InterestRefused(_) => StatusCode::BAD_REQUEST,
        CoreError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        CoreError::Banned { .. } => StatusCode::FORBIDDEN,
        CoreError::NotFound(_) => StatusCode::NOT_FOUND,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(e) => ApiError::Refused(e),
            StoreError::Unavailable(m) => ApiError::StoreUnavailable(m),
        }
    }
}

impl ApiError {
    /// Status and stable code.
    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Refused(e) => (refusal_status(e), e.code()),
            ApiError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "state_unavailable"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::TooManyConnections(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_connections")
            }
            ApiError::UpgradeRequired(_) => (StatusCode::UPGRADE_REQUIRED, "websocket_required"),
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let retry_after = match &self {
            ApiError::Refused(CoreError::RateLimited { retry_after, .. }) => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        };
        let body = axum::Json(ErrorBody::new(code, self.to_string()));
        let mut resp = (status, body).into_response();
        if let Some(secs) = retry_after {
            resp.extensions_mut().insert(RateLimited);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if status == StatusCode::UPGRADE_REQUIRED {
            // RFC 9110 15.5.22: a 426 names the protocol to switch to;
            // RFC 6455 4.2.2: and the WebSocket version this server speaks.
            let h = resp.headers_mut();
            h.insert(
                header::UPGRADE,
                header::HeaderValue::from_static("websocket"),
            );
            h.insert(
                header::SEC_WEBSOCKET_VERSION,
                header::HeaderValue::from_static("13"),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let text = r.body_text();
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ),
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge(format!(
                    "request body is larger than {} bytes",
                    BODY_LIMIT
                ))
            }
            JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("invalid_json", text),
            _ => ApiError::bad_request("invalid_body", text),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", r.body_text())
    }
}
