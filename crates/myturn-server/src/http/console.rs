//! The web admin console at `/admin`: one page, a script and a style
//! sheet, built into the binary (nothing to install or build). The page
//! logs in with the admin token and uses the admin API and the admin
//! event stream like any other client; all data is inserted as text.
//!
//! Served with a strict Content-Security-Policy (scripts and styles from
//! this server only, no inline code, no framing), so even a bug that let
//! markup through could not run it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../../assets/admin.html");
const SCRIPT: &str = include_str!("../../assets/app.js");
const STYLE: &str = include_str!("../../assets/app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An embedded asset, with the headers every built-in page is served with
/// (the console's and the API page's, [`super::apidocs`]).
pub(super) fn asset(body: &'static str, content_type: &'static str) -> Response {
    served(body.as_bytes(), content_type, CSP)
}

/// An embedded asset with the built-in pages' headers and `csp` (the
/// browser client's page, [`super::webpage`], allows its own module).
pub(super) fn served(
    body: &'static [u8],
    content_type: &'static str,
    csp: &'static str,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `GET /admin`: the console page.
#[utoipa::path(get, path = "/admin", tag = "console", responses((status = 200, description = "the admin console", content_type = "text/html")))]
pub(crate) async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

/// `GET /admin/app.js`: the console's script.
#[utoipa::path(get, path = "/admin/app.js", tag = "console", responses((status = 200, description = "the console's script", content_type = "text/javascript")))]
pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /admin/app.css`: the console's style sheet.
#[utoipa::path(get, path = "/admin/app.css", tag = "console", responses((status = 200, description = "the console's style sheet", content_type = "text/css")))]
pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}
