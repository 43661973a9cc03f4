//! The API to read in a browser at `/docs`: one page, a script and a
//! style sheet, built into the binary (no CDN, nothing to install). The
//! script fetches this server's `/openapi.json` and renders its
//! operations (by tag), their parameters, request bodies, statuses and
//! schemas. Everything from the document is inserted as text, never as
//! HTML, and the page is served with the console's strict
//! Content-Security-Policy (this server's own script and style only).

use axum::response::Response;

use super::console::asset;

const PAGE: &str = include_str!("../../assets/docs.html");
const SCRIPT: &str = include_str!("../../assets/docs.js");
const STYLE: &str = include_str!("../../assets/docs.css");

/// `GET /docs`: the API page.
#[utoipa::path(get, path = "/docs", operation_id = "docs_page", tag = "docs", responses((status = 200, description = "this API, rendered from /openapi.json", content_type = "text/html")))]
pub(crate) async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

/// `GET /docs/app.js`: the page's script.
#[utoipa::path(get, path = "/docs/app.js", operation_id = "docs_script", tag = "docs", responses((status = 200, description = "the API page's script", content_type = "text/javascript")))]
pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /docs/app.css`: the page's style sheet.
#[utoipa::path(get, path = "/docs/app.css", operation_id = "docs_style", tag = "docs", responses((status = 200, description = "the API page's style sheet", content_type = "text/css")))]
pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}
