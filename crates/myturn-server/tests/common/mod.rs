//! Helpers shared by the server's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use myturn_server::{App, Config};
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN: &str = "admin-token-for-tests-0123456789";

pub fn config() -> Config {
    let mut cfg = Config::defaults();
    cfg.admin_token = Some(ADMIN.into());
    // The built-in PBX (the default) on a free port: tests run in parallel.
    cfg.sip_listen = "127.0.0.1:0".parse().unwrap();
    cfg.media_ports = own_media_ports();
    cfg
}

pub fn app_with(cfg: &Config) -> App {
    App::new(cfg, Some(42)).expect("app")
}

pub fn app() -> App {
    app_with(&config())
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

pub async fn send(app: &App, req: Request<Body>) -> Resp {
    let resp = app.router().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

pub async fn call(
    app: &App,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    send(app, req).await
}

/// Registers `name`; returns the whole 201 body.
pub async fn register(app: &App, name: &str) -> Value {
    let r = call(
        app,
        Method::POST,
        "/v1/users",
        None,
        Some(serde_json::json!({ "name": name })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
    r.body
}

/// `PUT /v1/me/status` with just a status.
pub async fn set_status(app: &App, token: &str, status: &str) -> Resp {
    call(
        app,
        Method::PUT,
        "/v1/me/status",
        Some(token),
        Some(serde_json::json!({ "status": status })),
    )
    .await
}

pub fn token(v: &Value) -> String {
    v["token"].as_str().unwrap().to_owned()
}

/// Asserts the standard error body and returns its code.
pub fn error_code(r: &Resp) -> String {
    let code = r.body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error body: {}", r.text));
    assert!(
        !r.body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "empty message: {}",
        r.text
    );
    code.to_owned()
}

/// A relay port range no other server in this test process uses (tests
/// run side by side; the product default, 10000-19999, is left to servers
/// the tests start as separate processes).
pub fn own_media_ports() -> myturn_server::config::PortRange {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let k = NEXT.fetch_add(1, Ordering::Relaxed) % 500;
    let lo = 20_000 + k * 20;
    myturn_server::config::PortRange(lo..=lo + 19)
}

/// `GET {base}{path}` with the admin token, over a real connection: the
/// JSON body.
pub async fn admin_get(http: &reqwest::Client, base: &str, path: &str) -> Value {
    http.get(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
