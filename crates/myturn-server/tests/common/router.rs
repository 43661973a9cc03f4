//! The router driven in the test process with `tower::ServiceExt::oneshot`:
//! requests built one way, answers read into a [`Resp`].

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use myturn_server::App;
use serde_json::Value;
use tower::ServiceExt;

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
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

/// `GET path`, with `token` as the bearer token when given.
pub async fn get(app: &App, path: &str, token: Option<&str>) -> Resp {
    call(app, Method::GET, path, token, None).await
}

/// `POST path` with a JSON body.
pub async fn post(app: &App, path: &str, token: Option<&str>, body: Value) -> Resp {
    call(app, Method::POST, path, token, Some(body)).await
}

/// `PUT path` with a JSON body.
pub async fn put(app: &App, path: &str, token: Option<&str>, body: Value) -> Resp {
    call(app, Method::PUT, path, token, Some(body)).await
}

/// `DELETE path`.
pub async fn delete(app: &App, path: &str, token: Option<&str>) -> Resp {
    call(app, Method::DELETE, path, token, None).await
}

/// Registers `name`; returns the whole 201 body.
pub async fn register(app: &App, name: &str) -> Value {
    let r = post(app, "/v1/users", None, serde_json::json!({ "name": name })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
    r.body
}

/// `PUT /v1/me/status` with just a status.
pub async fn set_status(app: &App, token: &str, status: &str) -> Resp {
    let body = serde_json::json!({ "status": status });
    put(app, "/v1/me/status", Some(token), body).await
}

/// `POST /v1/session/refresh` with `refresh_token`.
pub async fn refresh(app: &App, refresh_token: &Value) -> Resp {
    let body = serde_json::json!({ "refresh_token": refresh_token });
    post(app, "/v1/session/refresh", None, body).await
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
