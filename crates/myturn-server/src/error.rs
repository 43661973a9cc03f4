//! The API's error type. Every failure leaves as a JSON
//! `{"error": {"code", "message"}}` body with a 4xx status (5xx only for
//! "try again later" conditions, never for bad input).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use myturn_wire::{ErrorBody, NameError};

/// Largest accepted request body, in bytes.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

use crate::core::CoreError;
use crate::registry::RegistryError;

/// The stable code of an error answer, left in the response's extensions
/// for the metrics layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorCode(pub &'static str);

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A malformed request: bad JSON, an unknown field, a bad query.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// The nickname breaks the rule.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// Missing, malformed, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// Body over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Body that is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Method not allowed on this path.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// A temporary condition: server full.
    #[error("{0}")]
    Unavailable(String),
    /// Over a rate limit.
    #[error("too many requests; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// When a retry can succeed.
        retry_after: std::time::Duration,
    },
    /// Too many event streams for this user.
    #[error("{0}")]
    TooManyConnections(String),
    /// The name is banned.
    #[error("this name is banned for another {remaining_secs} s")]
    Banned {
        /// Seconds until the ban ends.
        remaining_secs: u64,
    },
}

impl ApiError {
    /// Status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::TooManyConnections(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_connections")
            }
            ApiError::Banned { .. } => (StatusCode::FORBIDDEN, "banned"),
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
            ApiError::RateLimited { retry_after } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        };
        let body = axum::Json(ErrorBody::new(code, self.to_string()));
        let mut resp = (status, body).into_response();
        resp.extensions_mut().insert(ErrorCode(code));
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
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

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::NameTaken(_) => ApiError::Conflict {
                code: "name_taken",
                message,
            },
            RegistryError::NoSuchUser => ApiError::Unauthorized(
                "your session has ended (logged out, kicked or expired); register again".into(),
            ),
            RegistryError::Full(_) | RegistryError::NoExtension => ApiError::Unavailable(message),
            RegistryError::NotReady => ApiError::Conflict {
                code: "not_ready",
                message,
            },
            RegistryError::NotPaired => ApiError::Conflict {
                code: "not_paired",
                message,
            },
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Registry(e) => e.into(),
            CoreError::InvalidName(e) => ApiError::InvalidName(e),
            CoreError::Invalid { code, message } => ApiError::BadRequest { code, message },
            CoreError::Unauthorized(m) => ApiError::Unauthorized(m),
            CoreError::Token(e) => ApiError::Unauthorized(e.to_string()),
            CoreError::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            CoreError::Banned { remaining_secs } => ApiError::Banned { remaining_secs },
            CoreError::NotFound(m) => ApiError::NotFound(m),
            CoreError::Conflict { code, message } => ApiError::Conflict { code, message },
        }
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

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", r.body_text())
    }
}
