//! The OpenAPI refusal coverage test (#27): every operation in the
//! document the server serves at `/openapi.json` is driven, over real
//! HTTP against servers in this process, into each of its answers: its
//! successes and each refusal it documents (401 without or with a bad
//! token, 403 with the admin API off or a banned name, 404, the 409s, 400
//! / 413 / 415 for bad bodies, 426 for a plain GET to a stream, 429 from
//! each rate limit and from the per-IP request limit on every route…).
//!
//! It fails on any answer whose status the document does not list for
//! that operation, and on any documented status below 500 that no case
//! drove, so the document can neither miss a status the server gives nor
//! list one it never gives. 5xx answers need a failing state store or a
//! PBX that lags; those are listed but not all driven.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, ADMIN};

/// Documented statuses below 500 that no case drives, each with why
/// (method, path template, status, why). Empty: every one is driven.
const NOT_DRIVEN: &[(&str, &str, u16, &str)] = &[];

/// (METHOD, path template) of an operation.
type Op = (String, String);

/// What the document lists, what the cases drove, and what went wrong.
struct Coverage {
    documented: BTreeMap<Op, BTreeSet<u16>>,
    driven: BTreeMap<Op, BTreeSet<u16>>,
    wrong: Vec<String>,
}

/// A request body.
enum Body {
    None,
    Json(Value),
    /// A content type (none when empty) and the bytes.
    Raw(&'static str, Vec<u8>),
}

/// An answer: status, headers, JSON body (`Null` when it is not JSON).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// Whether `path` (a query string aside) is an instance of `template`.
fn instance_of(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// A JSON body over the 16 KiB body limit.
fn too_large() -> Body {
    Body::Json(json!({ "name": "a".repeat(20_000) }))
}

impl Coverage {
    /// The document the server at `api` serves.
    async fn read(api: &common::Api) -> Coverage {
        let r = api.get("/openapi.json", None).await;
        assert_eq!(r.status(), 200);
        let doc: Value = r.json().await.unwrap();
        let mut documented = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let statuses = op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|s| s.parse::<u16>().unwrap_or_else(|_| panic!("{path}: {s}")))
                    .collect();
                documented.insert((method.to_uppercase(), path.clone()), statuses);
            }
        }
        assert!(documented.len() >= 30, "{documented:?}");
        let mut cov = Coverage {
            documented,
            driven: BTreeMap::new(),
            wrong: Vec::new(),
        };
        cov.note(
            "GET",
            "/openapi.json",
            "/openapi.json",
            200,
            &Value::Null,
            200,
            None,
        );
        cov
    }

    /// Every operation, with a path that instantiates it.
    fn operations(&self) -> Vec<(String, String, String)> {
        self.documented
            .keys()
            .map(|(m, t)| {
                let path = t.replace("{name}", "nobody").replace("{ip}", "192.0.2.1");
                (m.clone(), t.clone(), path)
            })
            .collect()
    }

    /// Notes an answer of `method template` (asked as `path`): it must be
    /// a status the document lists for the operation, and the status (and
    /// error code, when given) the case meant to drive.
    #[allow(clippy::too_many_arguments)]
    fn note(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        status: u16,
        body: &Value,
        expect: u16,
        code: Option<&str>,
    ) {
        let op = (method.to_owned(), template.to_owned());
        let what = format!("{method} {path}");
        assert!(instance_of(template, path), "{what} is not {template}");
        let Some(listed) = self.documented.get(&op) else {
            panic!("{method} {template} is not in the document");
        };
        if !listed.contains(&status) {
            self.wrong.push(format!(
                "{what} answered {status} ({body}), which the document does not list for {method} {template}: {listed:?}"
            ));
        }
        if status != expect {
            self.wrong.push(format!(
                "{what}: expected {expect}, answered {status}: {body}"
            ));
        }
        if status >= 400 {
            let shaped = body["error"]["code"].is_string()
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty());
            if !shaped {
                self.wrong
                    .push(format!("{what} {status}: not the error body: {body}"));
            }
        }
        if let Some(code) = code {
            if body["error"]["code"] != code {
                self.wrong
                    .push(format!("{what}: expected code {code}, got {body}"));
            }
        }
        self.driven.entry(op).or_default().insert(status);
    }

    /// A check of an answer beyond its status (a header it must carry).
    fn require(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.wrong.push(what());
        }
    }

    /// `method path` (an instance of `template`) on `api`, with `token`
    /// and `body`; the answer must be `expect` (with `code`).
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &mut self,
        api: &common::Api,
        method: Method,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        expect: u16,
        code: Option<&str>,
    ) -> Answer {
        let a = send(api, method.clone(), path, token, body).await;
        self.note(
            method.as_str(),
            template,
            path,
            a.status,
            &a.body,
            expect,
            code,
        );
        a
    }

    /// A refusal of a JSON-body operation for each bad body: not JSON,
    /// not the operation's JSON, over the limit, without a content type or
    /// with another.
    async fn bad_bodies(
        &mut self,
        api: &common::Api,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) {
        let cases = [
            (
                Body::Raw("application/json", b"{".to_vec()),
                400,
                "invalid_json",
            ),
            (
                Body::Json(json!({ "no_such_field": 1 })),
                400,
                "invalid_body",
            ),
            (too_large(), 413, "payload_too_large"),
            (Body::Raw("", b"{}".to_vec()), 415, "unsupported_media_type"),
            (
                Body::Raw("text/plain", b"{}".to_vec()),
                415,
                "unsupported_media_type",
            ),
        ];
        for (body, status, code) in cases {
            self.call(
                api,
                method.clone(),
                path,
                path,
                token,
                body,
                status,
                Some(code),
            )
            .await;
        }
    }

    /// An event stream opened at `path` (an instance of `template`) with
    /// `headers`, over a real WebSocket handshake: 101, or the refusal.
    async fn ws(
        &mut self,
        api: &common::Api,
        template: &str,
        path: &str,
        headers: &[(&str, String)],
        expect: u16,
        code: Option<&str>,
    ) -> Option<common::ws::Ws> {
        let req = api.ws_request(path, headers);
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, resp)) => {
                let status = resp.status().as_u16();
                self.note("GET", template, path, status, &Value::Null, expect, code);
                Some(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                self.note(
                    "GET",
                    template,
                    path,
                    resp.status().as_u16(),
                    &body,
                    expect,
                    code,
                );
                None
            }
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// `GET path` (an instance of `template`) written by hand over TCP,
    /// with `headers` as given (a handshake a WebSocket client would not
    /// send); the answer must be `expect` with `code`.
    async fn raw_get(
        &mut self,
        addr: SocketAddr,
        template: &str,
        path: &str,
        headers: &str,
        expect: u16,
        code: &str,
    ) -> String {
        let (status, head, body) = raw_get(addr, path, headers).await;
        self.note("GET", template, path, status, &body, expect, Some(code));
        head
    }

    /// Fails with every wrong answer, and with every documented status
    /// below 500 that no case drove (less [`NOT_DRIVEN`]).
    fn verdict(self) {
        let mut wrong = self.wrong;
        let exempt: BTreeSet<(String, String, u16)> = NOT_DRIVEN
            .iter()
            .map(|(m, p, s, _)| ((*m).to_owned(), (*p).to_owned(), *s))
            .collect();
        for ((method, path), statuses) in &self.documented {
            let driven = self.driven.get(&(method.clone(), path.clone()));
            for &s in statuses {
                let done = driven.is_some_and(|d| d.contains(&s));
                let excused = exempt.contains(&(method.clone(), path.clone(), s));
                if s < 500 && !done && !excused {
                    wrong.push(format!(
                        "{method} {path}: the document lists {s}, which no case drove"
                    ));
                }
                if done && excused {
                    wrong.push(format!(
                        "{method} {path} {s} is driven: take it off NOT_DRIVEN"
                    ));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} problems:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}

async fn send(
    api: &common::Api,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Body,
) -> Answer {
    let mut b = api.http.request(method, format!("{}{path}", api.base));
    if let Some(t) = token {
        b = b.bearer_auth(t);
    }
    b = match body {
        Body::None => b,
        Body::Json(v) => b.json(&v),
        Body::Raw(ctype, bytes) => {
            let b = if ctype.is_empty() {
                b
            } else {
                b.header("content-type", ctype)
            };
            b.body(bytes)
        }
    };
    let r = b.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let bytes = r.bytes().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// `GET path` over a connection of its own: status, header block (lower
/// case), JSON body.
async fn raw_get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, Value) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let head = head.to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= len || n == 0 {
                    return (head, body.to_owned());
                }
            }
            assert!(n > 0, "connection closed: {text}");
        }
    };
    let (head, body) = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer within 5 s");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        head,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// Registers `name` through the coverage (201); the body.
async fn register(cov: &mut Coverage, api: &common::Api, name: &str) -> Value {
    let body = Body::Json(json!({ "name": name }));
    cov.call(
        api,
        Method::POST,
        "/v1/users",
        "/v1/users",
        None,
        body,
        201,
        None,
    )
    .await
    .body
}

/// The GET routes of the admin API that only read.
const ADMIN_VIEWS: &[&str] = &[
    "/v1/admin/users",
    "/v1/admin/pairs",
    "/v1/admin/interests",
    "/v1/admin/sip-conf",
    "/v1/admin/media",
    "/v1/admin/history",
    "/v1/admin/blocked",
    "/v1/admin/reports",
    "/v1/admin/bans",
];

/// The pages and documents anyone may read.
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/admin",
    "/admin/app.js",
    "/admin/app.css",
    "/docs",
    "/docs/app.js",
    "/docs/app.css",
    "/",
    "/web/page.js",
    "/web/page.css",
    "/web/worklet.js",
    "/web/myturn_web.js",
    "/web/myturn_web_bg.wasm",
];

/// A server with no per-IP request limit (the main one does not test it:
/// the cases below come from one address, faster than a person would).
fn unlimited() -> myturn_server::Config {
    let mut cfg = common::config();
    cfg.http_rate_limit = "off".parse().unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_the_server_answers_is_documented_and_every_documented_one_is_answered() {
    use Method as M;
    // The main server: open admission, the built-in PBX, whose flood
    // guard blocks sources past 5 datagrams a second (loopback's
    // 127.0.0.1 trusted, so only the flooder below is blocked).
    let mut cfg = unlimited();
    cfg.sip_rate_limit = "5/10".parse().unwrap();
    cfg.sip_trusted = "127.0.0.1".parse().unwrap();
    let main = common::live(&cfg).await;
    let api = &main.api;
    // The document this server serves, not a copy.
    let mut cov = Coverage::read(api).await;

    for path in PUBLIC {
        cov.call(api, M::GET, path, path, None, Body::None, 200, None)
            .await;
    }

    // Registration.
    let alice = register(&mut cov, api, "alice").await;
    let (a, a_refresh) = (common::token(&alice), alice["refresh_token"].clone());
    let b = common::token(&register(&mut cov, api, "bob").await);
    let c = common::token(&register(&mut cov, api, "carol").await);
    let d = common::token(&register(&mut cov, api, "dave").await);
    let users = "/v1/users";
    for (body, status, code) in [
        (json!({ "name": "1alice" }), 400, "invalid_name"),
        (json!({ "name": "ALICE" }), 409, "name_taken"),
    ] {
        cov.call(
            api,
            M::POST,
            users,
            users,
            None,
            Body::Json(body),
            status,
            Some(code),
        )
        .await;
    }
    cov.bad_bodies(api, M::POST, users, None).await;

    // A ban: the name cannot register; lifted, it is not banned any more.
    let bans = "/v1/admin/bans";
    let ban = json!({ "name": "mallory", "seconds": 60 });
    cov.call(
        api,
        M::POST,
        bans,
        bans,
        Some(ADMIN),
        Body::Json(ban),
        201,
        None,
    )
    .await;
    let mallory = Body::Json(json!({ "name": "mallory" }));
    cov.call(
        api,
        M::POST,
        users,
        users,
        None,
        mallory,
        403,
        Some("banned"),
    )
    .await;
    for (body, code) in [
        (json!({ "name": "1x", "seconds": 60 }), "invalid_name"),
        (json!({ "name": "mallory", "seconds": 0 }), "invalid_body"),
    ] {
        cov.call(
            api,
            M::POST,
            bans,
            bans,
            Some(ADMIN),
            Body::Json(body),
            400,
            Some(code),
        )
        .await;
    }
    cov.bad_bodies(api, M::POST, bans, Some(ADMIN)).await;
    let unban = "/v1/admin/bans/{name}";
    let lift = "/v1/admin/bans/mallory";
    cov.call(
        api,
        M::DELETE,
        unban,
        lift,
        Some(ADMIN),
        Body::None,
        204,
        None,
    )
    .await;
    cov.call(
        api,
        M::DELETE,
        unban,
        lift,
        Some(ADMIN),
        Body::None,
        404,
        Some("not_found"),
    )
    .await;
    cov.call(
        api,
        M::DELETE,
        unban,
        "/v1/admin/bans/%FF",
        Some(ADMIN),
        Body::None,
        400,
        Some("invalid_path"),
    )
    .await;

    // Who am I, and the token checks of every user route.
    cov.call(
        api,
        M::GET,
        "/v1/me",
        "/v1/me",
        Some(&a),
        Body::None,
        200,
        None,
    )
    .await;
    let status = "/v1/me/status";
    let ready = || Body::Json(json!({ "status": "ready" }));
    for (method, path, body) in [
        (M::GET, "/v1/me", Body::None),
        (M::DELETE, "/v1/me", Body::None),
        (M::PUT, status, ready()),
        (M::GET, "/v1/me/peer", Body::None),
        (
            M::POST,
            "/v1/me/report",
            Body::Json(json!({ "reason": "spam" })),
        ),
    ] {
        for token in [None, Some("garbage"), Some(ADMIN)] {
            let body = match &body {
                Body::Json(v) => Body::Json(v.clone()),
                _ => Body::None,
            };
            let r = cov
                .call(
                    api,
                    method.clone(),
                    path,
                    path,
                    token,
                    body,
                    401,
                    Some("unauthorized"),
                )
                .await;
            let challenged = r
                .headers
                .get("www-authenticate")
                .is_some_and(|v| v == "Bearer");
            cov.require(challenged, || {
                format!("{method} {path} 401 without WWW-Authenticate: Bearer")
            });
        }
    }

    // Status and pairing: alice waits alone, carol is busy.
    cov.call(api, M::PUT, status, status, Some(&a), ready(), 200, None)
        .await;
    let peer = "/v1/me/peer";
    cov.call(api, M::GET, peer, peer, Some(&a), Body::None, 204, None)
        .await;
    cov.call(
        api,
        M::GET,
        peer,
        peer,
        Some(&c),
        Body::None,
        409,
        Some("not_ready"),
    )
    .await;
    cov.call(
        api,
        M::GET,
        peer,
        "/v1/me/peer?wait=soon",
        Some(&a),
        Body::None,
        400,
        Some("invalid_query"),
    )
    .await;
    let talk = Body::Json(json!({ "status": "ready_to_talk" }));
    cov.call(
        api,
        M::PUT,
        status,
        status,
        Some(&c),
        talk,
        409,
        Some("not_paired"),
    )
    .await;
    for (body, code) in [
        (json!({ "status": "paired" }), "invalid_body"),
        (
            json!({ "status": "ready", "media_key": "short" }),
            "invalid_media_key",
        ),
        (
            json!({ "status": "ready", "interests": ["!"] }),
            "invalid_interests",
        ),
    ] {
        cov.call(
            api,
            M::PUT,
            status,
            status,
            Some(&c),
            Body::Json(body),
            400,
            Some(code),
        )
        .await;
    }
    cov.bad_bodies(api, M::PUT, status, Some(&c)).await;
    // Bob says ready: paired with alice at once.
    cov.call(api, M::PUT, status, status, Some(&b), ready(), 200, None)
        .await;
    let r = cov
        .call(api, M::GET, peer, peer, Some(&a), Body::None, 200, None)
        .await;
    assert_eq!(r.body["peer"]["name"], "bob", "{}", r.body);

    // Reports: carol has had nobody; alice reports bob, three at once.
    let report = "/v1/me/report";
    let spam = || Body::Json(json!({ "reason": "spam" }));
    cov.call(
        api,
        M::POST,
        report,
        report,
        Some(&c),
        spam(),
        409,
        Some("no_partner"),
    )
    .await;
    let bad = Body::Json(json!({ "reason": "two\nlines" }));
    cov.call(
        api,
        M::POST,
        report,
        report,
        Some(&a),
        bad,
        400,
        Some("invalid_text"),
    )
    .await;
    cov.bad_bodies(api, M::POST, report, Some(&a)).await;
    for _ in 0..3 {
        cov.call(api, M::POST, report, report, Some(&a), spam(), 201, None)
            .await;
    }
    let r = cov
        .call(
            api,
            M::POST,
            report,
            report,
            Some(&a),
            spam(),
            429,
            Some("rate_limited"),
        )
        .await;
    cov.require(r.headers.contains_key("retry-after"), || {
        "report 429 without Retry-After".into()
    });

    // Refresh: a good one, a bad one, bad bodies, then past the limit.
    let refresh = "/v1/session/refresh";
    let spend = |t: &Value| Body::Json(json!({ "refresh_token": t }));
    cov.call(
        api,
        M::POST,
        refresh,
        refresh,
        None,
        spend(&a_refresh),
        200,
        None,
    )
    .await;
    cov.call(
        api,
        M::POST,
        refresh,
        refresh,
        None,
        spend(&a_refresh),
        401,
        Some("unauthorized"),
    )
    .await;
    cov.bad_bodies(api, M::POST, refresh, None).await;
    let bogus = json!("not-a-refresh-token");
    let mut limited = false;
    for _ in 0..25 {
        let r = send(api, M::POST, refresh, None, spend(&bogus)).await;
        let expect = if r.status == 429 { 429 } else { 401 };
        cov.note("POST", refresh, refresh, r.status, &r.body, expect, None);
        if r.status == 429 {
            cov.require(r.headers.contains_key("retry-after"), || {
                "refresh 429 without Retry-After".into()
            });
            limited = true;
            break;
        }
    }
    assert!(limited, "20 refreshes at once, then one per 3 s");

    // Log out: dave's token is dead after.
    cov.call(
        api,
        M::DELETE,
        "/v1/me",
        "/v1/me",
        Some(&d),
        Body::None,
        204,
        None,
    )
    .await;
    cov.call(
        api,
        M::GET,
        "/v1/me",
        "/v1/me",
        Some(&d),
        Body::None,
        401,
        Some("unauthorized"),
    )
    .await;

    // The user's event stream.
    let events = "/v1/events";
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(
            cov.ws(api, events, events, &bearer(&c), 101, None)
                .await
                .unwrap(),
        );
    }
    cov.ws(
        api,
        events,
        events,
        &bearer(&c),
        429,
        Some("too_many_connections"),
    )
    .await;
    drop(open);
    cov.ws(api, events, events, &[], 401, Some("unauthorized"))
        .await;
    cov.ws(
        api,
        events,
        events,
        &bearer("garbage"),
        401,
        Some("unauthorized"),
    )
    .await;
    cov.ws(
        api,
        events,
        "/v1/events?token=x",
        &bearer(&a),
        400,
        Some("token_in_url"),
    )
    .await;
    // SIP over WebSocket to the built-in PBX: the `sip` subprotocol, or a
    // refusal; a plain GET is told to upgrade.
    let sip = "/sip";
    let sip_ws = cov
        .ws(
            api,
            sip,
            sip,
            &[("sec-websocket-protocol", "sip".into())],
            101,
            None,
        )
        .await;
    assert!(sip_ws.is_some());
    cov.ws(api, sip, sip, &[], 400, Some("sip_subprotocol_required"))
        .await;
    cov.call(
        api,
        M::GET,
        sip,
        sip,
        None,
        Body::None,
        426,
        Some("websocket_required"),
    )
    .await;
    // The browser's media bridge: the token in the subprotocol list, as
    // a page sends it; none, or one in the URL, is refused.
    let media_proto = [(
        "sec-websocket-protocol",
        format!("myturn-media, bearer.{c}"),
    )];
    let media = "/media";
    let media_ws = cov.ws(api, media, media, &media_proto, 101, None).await;
    assert!(media_ws.is_some());
    // The per-user cap: carol holds one media connection (above); three
    // more, and the fifth is refused on either route.
    let mut more = Vec::new();
    for _ in 0..3 {
        let ws = cov.ws(api, media, media, &media_proto, 101, None).await;
        more.push(ws.expect("a media socket"));
    }
    cov.ws(
        api,
        media,
        media,
        &media_proto,
        429,
        Some("too_many_connections"),
    )
    .await;
    cov.call(
        api,
        M::POST,
        "/media/webrtc",
        "/media/webrtc",
        Some(&c),
        Body::Json(json!({ "sdp": "v=0" })),
        429,
        Some("too_many_connections"),
    )
    .await;
    drop(more);
    // Their bridges end as the sockets close: back to the one.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !main
        .metrics()
        .await
        .contains("\nmyturn_web_media_bridges 1\n")
    {
        assert!(
            std::time::Instant::now() < until,
            "the closed bridges linger"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cov.ws(api, media, media, &[], 401, Some("unauthorized"))
        .await;
    cov.ws(
        api,
        media,
        "/media?token=x",
        &bearer(&c),
        400,
        Some("token_in_url"),
    )
    .await;
    cov.call(
        api,
        M::GET,
        media,
        media,
        Some(&c),
        Body::None,
        426,
        Some("websocket_required"),
    )
    .await;
    // Its data channel's signalling: an offer (made by str0m here, as a
    // browser would make one) is answered; garbage is not an offer.
    let webrtc = "/media/webrtc";
    let offer = {
        let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
        let mut change = rtc.sdp_api();
        change.add_channel("myturn-media".into());
        let (offer, _pending) = change.apply().expect("an offer");
        offer.to_sdp_string()
    };
    let r = cov
        .call(
            api,
            M::POST,
            webrtc,
            webrtc,
            Some(&c),
            Body::Json(json!({ "sdp": offer })),
            200,
            None,
        )
        .await;
    assert!(
        r.body["sdp"].as_str().unwrap().contains("a=ice-lite"),
        "{}",
        r.body
    );
    cov.call(
        api,
        M::POST,
        webrtc,
        webrtc,
        Some(&c),
        Body::Json(json!({ "sdp": "v=0 garbage" })),
        400,
        Some("invalid_offer"),
    )
    .await;
    cov.call(
        api,
        M::POST,
        webrtc,
        webrtc,
        None,
        Body::Json(json!({ "sdp": "v=0" })),
        401,
        Some("unauthorized"),
    )
    .await;
    cov.bad_bodies(api, M::POST, webrtc, Some(&c)).await;
    let admin_events = "/v1/admin/events";
    let admin_ws = cov
        .ws(api, admin_events, admin_events, &bearer(ADMIN), 101, None)
        .await;
    assert!(admin_ws.is_some());
    cov.ws(
        api,
        admin_events,
        admin_events,
        &[],
        401,
        Some("unauthorized"),
    )
    .await;
    cov.ws(
        api,
        admin_events,
        admin_events,
        &bearer(&a),
        401,
        Some("unauthorized"),
    )
    .await;
    cov.ws(
        api,
        admin_events,
        "/v1/admin/events?access_token=x",
        &bearer(ADMIN),
        400,
        Some("token_in_url"),
    )
    .await;
    // Not a WebSocket handshake: a plain GET is told to upgrade, as is one
    // for another version; an upgrade without its key is malformed.
    // (Carol's token: alice's family was revoked by the spent refresh.)
    for (template, token) in [(events, c.as_str()), (admin_events, ADMIN)] {
        let r = cov
            .call(
                api,
                M::GET,
                template,
                template,
                Some(token),
                Body::None,
                426,
                Some("websocket_required"),
            )
            .await;
        let upgrade = r.headers.get("upgrade").is_some_and(|v| v == "websocket");
        cov.require(upgrade, || {
            format!("{template} 426 without Upgrade: websocket")
        });
        let version = r
            .headers
            .get("sec-websocket-version")
            .is_some_and(|v| v == "13");
        cov.require(version, || {
            format!("{template} 426 without Sec-WebSocket-Version: 13")
        });
        let auth = format!("Authorization: Bearer {token}\r\n");
        let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
        let head = cov
            .raw_get(
                main.addr,
                template,
                template,
                &format!("{auth}{upgrade}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"),
                426,
                "websocket_required",
            )
            .await;
        let version = head.contains("\r\nsec-websocket-version: 13");
        cov.require(version, || {
            format!("{template} 426 (version 8) without Sec-WebSocket-Version: 13")
        });
        cov.raw_get(
            main.addr,
            template,
            template,
            &format!("{auth}{upgrade}Sec-WebSocket-Version: 13\r\n"),
            400,
            "invalid_handshake",
        )
        .await;
    }

    // The admin API: without the admin token, or with a user's, refused.
    let admit = "/v1/admin/admit";
    let lobby = "/v1/admin/lobby";
    let admin_calls: Vec<(Method, &str, &str, Option<Value>)> = ADMIN_VIEWS
        .iter()
        .map(|p| (M::GET, *p, *p, None))
        .chain([
            (M::POST, admit, admit, Some(json!({ "all": true }))),
            (M::POST, lobby, lobby, Some(json!({ "text": "hi" }))),
            (
                M::POST,
                bans,
                bans,
                Some(json!({ "name": "mallory", "seconds": 60 })),
            ),
            (M::DELETE, unban, "/v1/admin/bans/mallory", None),
            (
                M::DELETE,
                "/v1/admin/users/{name}",
                "/v1/admin/users/bob",
                None,
            ),
            (
                M::DELETE,
                "/v1/admin/blocked/{ip}",
                "/v1/admin/blocked/192.0.2.1",
                None,
            ),
        ])
        .collect();
    for (method, template, path, body) in &admin_calls {
        for token in [
            None,
            Some(a.as_str()),
            Some("admin-token-for-tests-012345678X"),
        ] {
            let body = body.clone().map_or(Body::None, Body::Json);
            cov.call(
                api,
                method.clone(),
                template,
                path,
                token,
                body,
                401,
                Some("unauthorized"),
            )
            .await;
        }
    }
    for path in ADMIN_VIEWS {
        cov.call(api, M::GET, path, path, Some(ADMIN), Body::None, 200, None)
            .await;
    }
    // Admission is open here: no waiting room.
    let all = || Body::Json(json!({ "all": true }));
    cov.call(
        api,
        M::POST,
        admit,
        admit,
        Some(ADMIN),
        all(),
        409,
        Some("not_moderated"),
    )
    .await;
    let neither = Body::Json(json!({}));
    cov.call(
        api,
        M::POST,
        admit,
        admit,
        Some(ADMIN),
        neither,
        400,
        Some("invalid_body"),
    )
    .await;
    cov.bad_bodies(api, M::POST, admit, Some(ADMIN)).await;
    // The lobby.
    let hello = Body::Json(json!({ "text": "hello" }));
    let r = cov
        .call(api, M::POST, lobby, lobby, Some(ADMIN), hello, 202, None)
        .await;
    assert!(r.body["delivered"].is_u64(), "{}", r.body);
    let bad = Body::Json(json!({ "text": "two\nlines" }));
    cov.call(
        api,
        M::POST,
        lobby,
        lobby,
        Some(ADMIN),
        bad,
        400,
        Some("invalid_text"),
    )
    .await;
    cov.bad_bodies(api, M::POST, lobby, Some(ADMIN)).await;
    // Kicks.
    let kick = "/v1/admin/users/{name}";
    cov.call(
        api,
        M::DELETE,
        kick,
        "/v1/admin/users/bob",
        Some(ADMIN),
        Body::None,
        204,
        None,
    )
    .await;
    cov.call(
        api,
        M::DELETE,
        kick,
        "/v1/admin/users/bob",
        Some(ADMIN),
        Body::None,
        404,
        Some("not_found"),
    )
    .await;
    cov.call(
        api,
        M::DELETE,
        kick,
        "/v1/admin/users/%FF",
        Some(ADMIN),
        Body::None,
        400,
        Some("invalid_path"),
    )
    .await;
    // The SIP flood guard: a flooder from another loopback address is
    // blocked; lifting the block answers 204, then 404.
    let unblock = "/v1/admin/blocked/{ip}";
    let flooder = "127.0.0.5";
    let sock = tokio::net::UdpSocket::bind((flooder, 0)).await.unwrap();
    for _ in 0..50 {
        sock.send_to(b"not SIP\r\n\r\n", main.app.sip_addr().unwrap())
            .await
            .unwrap();
    }
    let mut blocked = false;
    for _ in 0..50 {
        if main.admin_get("/v1/admin/blocked").await["total"] == 1 {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(blocked, "the flooder was not blocked");
    let lift = format!("/v1/admin/blocked/{flooder}");
    cov.call(
        api,
        M::DELETE,
        unblock,
        &lift,
        Some(ADMIN),
        Body::None,
        204,
        None,
    )
    .await;
    cov.call(
        api,
        M::DELETE,
        unblock,
        &lift,
        Some(ADMIN),
        Body::None,
        404,
        Some("not_found"),
    )
    .await;
    for (path, code) in [
        ("/v1/admin/blocked/not-an-ip", "invalid_ip"),
        ("/v1/admin/blocked/%FF", "invalid_path"),
    ] {
        cov.call(
            api,
            M::DELETE,
            unblock,
            path,
            Some(ADMIN),
            Body::None,
            400,
            Some(code),
        )
        .await;
    }

    // Moderated admission: admitting a waiting user, or nobody.
    let mut cfg = unlimited();
    cfg.admission = myturn_server::Admission::Moderated;
    let moderated = common::live(&cfg).await;
    let m_api = &moderated.api;
    register(&mut cov, m_api, "zed").await;
    let zed = Body::Json(json!({ "name": "zed" }));
    let r = cov
        .call(m_api, M::POST, admit, admit, Some(ADMIN), zed, 200, None)
        .await;
    assert_eq!(r.body["admitted"], json!(["zed"]));
    let nobody = Body::Json(json!({ "name": "nobody" }));
    cov.call(
        m_api,
        M::POST,
        admit,
        admit,
        Some(ADMIN),
        nobody,
        404,
        Some("not_found"),
    )
    .await;

    // Without an admin token the admin API is off: 403 on every route.
    let mut cfg = unlimited();
    cfg.admin_token = None;
    let off = common::live(&cfg).await;
    for (method, template, path, body) in &admin_calls {
        let body = body.clone().map_or(Body::None, Body::Json);
        cov.call(
            &off.api,
            method.clone(),
            template,
            path,
            Some(ADMIN),
            body,
            403,
            Some("forbidden"),
        )
        .await;
    }
    cov.ws(
        &off.api,
        admin_events,
        admin_events,
        &bearer(ADMIN),
        403,
        Some("forbidden"),
    )
    .await;

    // Without the built-in PBX there is no SIP over WebSocket here.
    let mut cfg = unlimited();
    cfg.pbx = myturn_server::config::PbxKind::None;
    let no_pbx = common::live(&cfg).await;
    cov.ws(
        &no_pbx.api,
        sip,
        sip,
        &[("sec-websocket-protocol", "sip".into())],
        404,
        Some("not_found"),
    )
    .await;
    cov.ws(&no_pbx.api, media, media, &[], 404, Some("not_found"))
        .await;
    let someone = common::token(&register(&mut cov, &no_pbx.api, "someone").await);
    cov.call(
        &no_pbx.api,
        M::POST,
        webrtc,
        webrtc,
        Some(&someone),
        Body::Json(json!({ "sdp": "v=0" })),
        404,
        Some("not_found"),
    )
    .await;

    // Registration past its limit: 10 at once from one address.
    let busy = common::live(&unlimited()).await;
    for i in 0..10 {
        register(&mut cov, &busy.api, &format!("user{i}")).await;
    }
    let one_more = Body::Json(json!({ "name": "user10" }));
    let r = cov
        .call(
            &busy.api,
            M::POST,
            users,
            users,
            None,
            one_more,
            429,
            Some("rate_limited"),
        )
        .await;
    cov.require(r.headers.contains_key("retry-after"), || {
        "register 429 without Retry-After".into()
    });

    // A full server (5xx, driven where it is cheap): no room for a second
    // user, none for any event stream.
    let mut cfg = unlimited();
    cfg.max_users = 1;
    cfg.max_sockets = 0;
    let full = common::live(&cfg).await;
    let only = common::token(&register(&mut cov, &full.api, "only").await);
    let other = Body::Json(json!({ "name": "other" }));
    cov.call(
        &full.api,
        M::POST,
        users,
        users,
        None,
        other,
        503,
        Some("unavailable"),
    )
    .await;
    cov.ws(
        &full.api,
        events,
        events,
        &bearer(&only),
        503,
        Some("unavailable"),
    )
    .await;

    // The per-IP request limit, one a second from this address: every
    // route answers 429 with Retry-After before it is routed.
    let mut cfg = common::config();
    cfg.http_rate_limit = "1/1".parse().unwrap();
    let tight = common::live(&cfg).await;
    for (method, template, path) in cov.operations() {
        let method: Method = method.parse().unwrap();
        let mut limited = false;
        for _ in 0..10 {
            let r = send(&tight.api, method.clone(), &path, None, Body::None).await;
            let expect = if r.status == 429 { 429 } else { r.status };
            cov.note(
                method.as_str(),
                &template,
                &path,
                r.status,
                &r.body,
                expect,
                None,
            );
            if r.status == 429 {
                let why = r.body["error"]["code"] == "rate_limited"
                    && r.headers.contains_key("retry-after");
                cov.require(why, || {
                    format!("{method} {path}: 429 not `rate_limited` with Retry-After")
                });
                limited = true;
                break;
            }
        }
        assert!(limited, "{method} {path}: never limited");
    }

    cov.verdict();
}

#[test]
fn instances_of_templates() {
    assert!(instance_of("/v1/admin/users/{name}", "/v1/admin/users/bob"));
    assert!(instance_of("/v1/me/peer", "/v1/me/peer?wait=1"));
    assert!(!instance_of("/v1/admin/users/{name}", "/v1/admin/users/"));
    assert!(!instance_of("/v1/admin/users/{name}", "/v1/admin/users"));
    assert!(!instance_of("/v1/me", "/v1/me/peer"));
}
