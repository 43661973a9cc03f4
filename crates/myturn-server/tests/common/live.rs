//! The server serving real HTTP on a loopback port ([`serve`], [`Live`]),
//! and a reqwest client of a server at a base URL ([`Api`]): requests
//! built one way, for a server in this process or the binary in a process
//! of its own.

use std::net::SocketAddr;
use std::ops::Deref;
use std::time::{Duration, Instant};

use myturn_server::{App, Config};
use reqwest::{Method, Response};
use serde_json::{json, Value};

use super::{app_with, ADMIN};

/// Serves `app` on a fresh loopback port until the test ends; its address.
pub async fn serve(app: &App) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app.clone();
    tokio::spawn(async move { served.serve(listener, std::future::pending()).await });
    addr
}

/// `GET {base}{path}` with the admin token, over a real connection: the
/// JSON body.
pub async fn admin_get(http: &reqwest::Client, base: &str, path: &str) -> Value {
    myturn_testkit::http::get_json(http, &format!("{base}{path}"), ADMIN).await
}

/// A client of the server at `base` (`http://host:port`).
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Api {
        Api {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// `method path`, with `token` as the bearer token and `body` as the
    /// JSON body when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut b = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            b = b.bearer_auth(t);
        }
        if let Some(v) = body {
            b = b.json(&v);
        }
        b.send().await.unwrap()
    }

    /// `GET path`, with `token` when given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.call(Method::GET, path, token, None).await
    }

    /// `POST path` with a JSON body, with `token` when given.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// `DELETE path` with `token`.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// `GET path` with `token`: the JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        myturn_testkit::http::get_json(&self.http, &format!("{}{path}", self.base), token).await
    }

    /// `POST /v1/users` for `name`, whatever the answer.
    pub async fn post_user(&self, name: &str) -> Response {
        self.post("/v1/users", None, json!({ "name": name })).await
    }

    /// Registers `name`; the whole 201 body.
    pub async fn register(&self, name: &str) -> Value {
        let r = self.post_user(name).await;
        assert_eq!(r.status(), 201, "{name}");
        r.json().await.unwrap()
    }

    /// Registers each of `names`, one after the other; their 201 bodies.
    pub async fn register_all<const N: usize>(&self, names: [&str; N]) -> [Value; N] {
        let mut bodies = Vec::with_capacity(N);
        for name in names {
            bodies.push(self.register(name).await);
        }
        bodies.try_into().unwrap()
    }

    /// `PUT /v1/me/status` with just a status.
    pub async fn status(&self, token: &str, s: &str) -> Response {
        let body = json!({ "status": s });
        self.call(Method::PUT, "/v1/me/status", Some(token), Some(body))
            .await
    }

    /// `GET path` with the admin token: the JSON body.
    pub async fn admin_get(&self, path: &str) -> Value {
        admin_get(&self.http, &self.base, path).await
    }

    /// `POST path` with the admin token and a JSON body.
    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.post(path, Some(ADMIN), body).await
    }

    /// `GET /metrics`: the text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.text().await.unwrap()
    }

    /// Waits until `GET /healthz` answers 200 (a server just started).
    pub async fn wait_until_up(&self) {
        let start = Instant::now();
        while !self
            .http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "server did not come up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server this test runs, serving real HTTP on loopback, and a client
/// of it (what [`Api`] does, a `Live` does).
#[derive(Debug)]
pub struct Live {
    pub addr: SocketAddr,
    pub app: App,
    pub api: Api,
}

impl Live {
    /// Serves `app` ([`serve`]).
    pub async fn start(app: App) -> Live {
        let addr = serve(&app).await;
        Live {
            addr,
            app,
            api: Api::new(format!("http://{addr}")),
        }
    }
}

impl Deref for Live {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A server with `cfg` ([`app_with`]), serving.
pub async fn live(cfg: &Config) -> Live {
    Live::start(app_with(cfg)).await
}
