//! The browser client at `/`: one page, its script, style sheet and
//! audio worklet, and the end-to-end core as WebAssembly (`myturn-web`,
//! built by `crates/myturn-web/build-page.sh` and committed), all built
//! into the binary: nothing to build at install time, no CDN.
//!
//! The page uses the public API like any client (`docs/api.md`), SIP over
//! WebSocket (`/sip`) and the media bridge (`/media`). It is served with a
//! strict Content-Security-Policy: code from this server only, no inline
//! code, no framing; `'wasm-unsafe-eval'` lets it compile its own module.

use axum::http::header;
use axum::response::Response;

const PAGE: &str = include_str!("../../assets/web/index.html");
const SCRIPT: &str = include_str!("../../assets/web/page.js");
const STYLE: &str = include_str!("../../assets/web/page.css");
const WORKLET: &str = include_str!("../../assets/web/worklet.js");
const GLUE: &str = include_str!("../../assets/web/myturn_web.js");
const MODULE: &[u8] = include_bytes!("../../assets/web/myturn_web_bg.wasm");

const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let mut r = super::console::served(body, content_type, CSP);
    // The microphone for this origin only.
    r.headers_mut().insert(
        header::HeaderName::from_static("permissions-policy"),
        header::HeaderValue::from_static("microphone=(self), camera=()"),
    );
    r
}

/// `GET /`: the browser client.
#[utoipa::path(get, path = "/", operation_id = "web_page", tag = "web", responses((status = 200, description = "the browser client", content_type = "text/html")))]
pub(crate) async fn page() -> Response {
    asset(PAGE.as_bytes(), "text/html; charset=utf-8")
}

/// `GET /web/page.js`: the page's script.
#[utoipa::path(get, path = "/web/page.js", operation_id = "web_script", tag = "web", responses((status = 200, description = "the page's script", content_type = "text/javascript")))]
pub(crate) async fn script() -> Response {
    asset(SCRIPT.as_bytes(), "text/javascript; charset=utf-8")
}

/// `GET /web/page.css`: the page's style sheet.
#[utoipa::path(get, path = "/web/page.css", operation_id = "web_style", tag = "web", responses((status = 200, description = "the page's style sheet", content_type = "text/css")))]
pub(crate) async fn style() -> Response {
    asset(STYLE.as_bytes(), "text/css; charset=utf-8")
}

/// `GET /web/worklet.js`: the audio worklet (capture and playout).
#[utoipa::path(get, path = "/web/worklet.js", operation_id = "web_worklet", tag = "web", responses((status = 200, description = "the page's audio worklet", content_type = "text/javascript")))]
pub(crate) async fn worklet() -> Response {
    asset(WORKLET.as_bytes(), "text/javascript; charset=utf-8")
}

/// `GET /web/myturn_web.js`: the module's JavaScript bindings
/// (wasm-bindgen).
#[utoipa::path(get, path = "/web/myturn_web.js", operation_id = "web_bindings", tag = "web", responses((status = 200, description = "the end-to-end core's bindings", content_type = "text/javascript")))]
pub(crate) async fn glue() -> Response {
    asset(GLUE.as_bytes(), "text/javascript; charset=utf-8")
}

/// `GET /web/myturn_web_bg.wasm`: the end-to-end core (myturn-web).
#[utoipa::path(get, path = "/web/myturn_web_bg.wasm", operation_id = "web_module", tag = "web", responses((status = 200, description = "the end-to-end core, WebAssembly", content_type = "application/wasm")))]
pub(crate) async fn module() -> Response {
    asset(MODULE, "application/wasm")
}
