//! Route tests: the router driven with `tower::ServiceExt::oneshot`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use myturn_server::core::{State as _, StateExt as _};
use myturn_server::App;
use serde_json::json;

#[tokio::test]
async fn register_returns_credentials() {
    let app = app();
    let r = register(&app, "alice").await;
    assert_eq!(r["name"], "alice");
    assert_eq!(r["sip"]["username"], "alice");
    assert_eq!(r["sip"]["extension"], "111000");
    // The registrar is the built-in PBX, wherever it got its port.
    let sip = app.sip_addr().expect("built-in PBX");
    assert_ne!(sip.port(), 0);
    assert_eq!(r["sip"]["domain"], sip.to_string());
    let pw = r["sip"]["password"].as_str().unwrap();
    assert!(
        pw.len() >= 22 && pw.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{pw}"
    );
    assert!(r["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(r["expires_in"], 900);
    // The token is a 3-part JWT that works.
    assert_eq!(token(&r).split('.').count(), 3);
    let me = get(&app, "/v1/me", Some(&token(&r))).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.body,
        json!({"name": "alice", "status": "busy", "extension": "111000"})
    );
    let b = register(&app, "bob").await;
    assert_eq!(b["sip"]["extension"], "111001");
    assert_ne!(b["sip"]["password"], r["sip"]["password"]);
}

#[tokio::test]
async fn bad_names_are_rejected_with_the_rule() {
    let app = app();
    let mut bad: Vec<String> = vec![
        "".into(),
        "ab".into(),
        "_alice".into(),
        "1alice".into(),
        "al ice".into(),
        " alice".into(),
        "alice\n".into(),
        "ali\nce".into(),
        "ali\rce".into(),
        "zoë".into(),
        "алиса".into(),
        "a".repeat(33),
        "general".into(),
    ];
    for c in "[]();,=>&/${}#".chars() {
        bad.push(format!("ali{c}ce"));
    }
    for name in &bad {
        let r = post(&app, "/v1/users", None, json!({ "name": name })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?}: {}", r.text);
        assert_eq!(error_code(&r), "invalid_name", "{name:?}");
        let msg = r.body["error"]["message"].as_str().unwrap();
        if name != "general" {
            assert!(msg.contains("ASCII letter first"), "{name:?}: {msg}");
        }
    }
    // Nothing was registered.
    let users = get(&app, "/v1/admin/users", Some(ADMIN)).await;
    assert_eq!(users.body["users"], json!([]));
}

#[tokio::test]
async fn taken_names_conflict_regardless_of_case() {
    let app = app();
    register(&app, "Alice").await;
    for n in ["Alice", "alice", "ALICE"] {
        let r = post(&app, "/v1/users", None, json!({ "name": n })).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(error_code(&r), "name_taken");
    }
}

#[tokio::test]
async fn me_endpoints_need_a_valid_bearer_token() {
    let app = app();
    let alice = register(&app, "alice").await;
    let expired = {
        let uid = app
            .state
            .with_core(|c| c.state().find("alice").unwrap().id)
            .unwrap();
        let claims = app
            .state
            .jwt
            .verify(&token(&alice), myturn_server::clock::unix_now())
            .unwrap();
        app.state.jwt.issue(
            "alice",
            uid,
            claims.sid,
            myturn_server::clock::unix_now() - 3600,
        )
    };
    let forged = {
        let t = token(&alice);
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        parts.join(".")
    };
    for (method, path, body) in [
        (Method::GET, "/v1/me", None),
        (Method::DELETE, "/v1/me", None),
        (Method::GET, "/v1/me/peer", None),
        (
            Method::PUT,
            "/v1/me/status",
            Some(json!({"status": "ready"})),
        ),
    ] {
        for tok in [
            None,
            Some("garbage"),
            Some(expired.as_str()),
            Some(forged.as_str()),
        ] {
            let r = call(&app, method.clone(), path, tok, body.clone()).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {tok:?}"
            );
            assert_eq!(error_code(&r), "unauthorized");
            assert_eq!(r.headers["www-authenticate"], "Bearer");
        }
    }
    let r = get(&app, "/v1/me", Some(&expired)).await;
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    // A non-Bearer scheme.
    let req = Request::get("/v1/me")
        .header("authorization", format!("Basic {}", token(&alice)))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::UNAUTHORIZED);
    // Still alice's own status untouched.
    let me = get(&app, "/v1/me", Some(&token(&alice))).await;
    assert_eq!(me.body["status"], "busy");
}

#[tokio::test]
async fn the_whole_status_flow() {
    let app = app();
    let a = token(&register(&app, "alice").await);
    let b = token(&register(&app, "bob").await);
    let peer = |t: String| {
        let app = app.clone();
        async move { get(&app, "/v1/me/peer", Some(&t)).await }
    };
    let status = |t: String, s: &'static str| {
        let app = app.clone();
        async move { put(&app, "/v1/me/status", Some(&t), json!({ "status": s })).await }
    };
    // Busy: not ready.
    let r = peer(a.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(error_code(&r), "not_ready");
    // ready_to_talk before pairing is refused.
    let r = status(a.clone(), "ready_to_talk").await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (StatusCode::CONFLICT, "not_paired")
    );
    // Alice waits.
    assert_eq!(status(a.clone(), "ready").await.body["status"], "ready");
    assert_eq!(peer(a.clone()).await.status, StatusCode::NO_CONTENT);
    // Bob arrives: paired.
    assert_eq!(status(b.clone(), "ready").await.body["status"], "paired");
    let pa = peer(a.clone()).await;
    let pb = peer(b.clone()).await;
    assert_eq!(pa.status, StatusCode::OK);
    assert_eq!(
        pa.body["peer"],
        json!({"name": "bob", "extension": "111001"})
    );
    assert_eq!(
        pb.body["peer"],
        json!({"name": "alice", "extension": "111000"})
    );
    assert_ne!(pa.body["role"], pb.body["role"]);
    let (caller, callee) = if pa.body["role"] == "caller" {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    };
    // Callee waits for the INVITE; the caller sees it.
    assert_eq!(
        status(callee.clone(), "ready_to_talk").await.body["status"],
        "ready_to_talk"
    );
    assert_eq!(
        peer(caller.clone()).await.body["peer_status"],
        "ready_to_talk"
    );
    // Caller dials: both in call.
    assert_eq!(
        status(caller.clone(), "ready_to_talk").await.body["status"],
        "in_call"
    );
    let me = get(&app, "/v1/me", Some(&callee)).await;
    assert_eq!(me.body["status"], "in_call");
    let pairs = get(&app, "/v1/admin/pairs", Some(ADMIN)).await;
    assert_eq!(pairs.body["pairs"].as_array().unwrap().len(), 1);
    assert_eq!(pairs.body["pairs"][0]["in_call"], true);
    // Hang up: both back to busy, no pair.
    assert_eq!(status(caller.clone(), "busy").await.body["status"], "busy");
    let me = get(&app, "/v1/me", Some(&callee)).await;
    assert_eq!(me.body["status"], "busy");
    assert_eq!(peer(callee).await.status, StatusCode::CONFLICT);
    let pairs = get(&app, "/v1/admin/pairs", Some(ADMIN)).await;
    assert_eq!(pairs.body["pairs"], json!([]));
}

/// `PUT /v1/me/status` with a status and a media key.
async fn keyed(app: &App, token: &str, status: &str, key: &str) -> Resp {
    let body = json!({"status": status, "media_key": key});
    put(app, "/v1/me/status", Some(token), body).await
}

#[tokio::test]
async fn media_key_fingerprints_reach_the_partner() {
    let app = app();
    let a = token(&register(&app, "alice").await);
    let b = token(&register(&app, "bob").await);
    let (ka, kb) = ("A".repeat(43), "b_-9".repeat(10) + "xyz");
    for bad in ["short", &"=".repeat(43), &"A".repeat(44)] {
        let r = keyed(&app, &a, "ready", bad).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (StatusCode::BAD_REQUEST, "invalid_media_key"),
            "{bad}"
        );
    }
    let r = keyed(&app, &a, "busy", &ka).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    keyed(&app, &a, "ready", &ka).await;
    keyed(&app, &b, "ready", &kb).await;
    let pa = get(&app, "/v1/me/peer", Some(&a)).await;
    let pb = get(&app, "/v1/me/peer", Some(&b)).await;
    assert_eq!(pa.body["peer"]["media_key"], kb.as_str());
    assert_eq!(pb.body["peer"]["media_key"], ka.as_str());
    // Both sides get the same random 128-bit pair id (the media keys bind it).
    let id = pa.body["pair_id"].as_str().unwrap().to_owned();
    assert_eq!(pb.body["pair_id"], id.as_str());
    assert_eq!(id.len(), 32, "{id}");
    assert!(id
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    // The next draw without a key carries none over, and is a new pair.
    set_status(&app, &a, "ready").await;
    set_status(&app, &b, "ready").await;
    let pa = get(&app, "/v1/me/peer", Some(&a)).await;
    assert!(pa.body["peer"].get("media_key").is_none(), "{}", pa.text);
    assert_ne!(pa.body["pair_id"], id.as_str(), "a new pair gets a new id");
}

#[tokio::test]
async fn long_poll_returns_when_paired() {
    let app = app();
    let a = token(&register(&app, "alice").await);
    let b = token(&register(&app, "bob").await);
    set_status(&app, &a, "ready").await;
    let app2 = app.clone();
    let waiter = tokio::spawn(async move { get(&app2, "/v1/me/peer?wait=10", Some(&a)).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    let started = std::time::Instant::now();
    set_status(&app, &b, "ready").await;
    let r = waiter.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["peer"]["name"], "bob");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // A bad wait value is a 400, not a 500.
    let t = token(&register(&app, "carol").await);
    let r = get(&app, "/v1/me/peer?wait=soon", Some(&t)).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[tokio::test]
async fn logout_removes_the_user_everywhere() {
    let app = app();
    let a = register(&app, "alice").await;
    let b = token(&register(&app, "bob").await);
    let ta = token(&a);
    set_status(&app, &ta, "ready").await;
    set_status(&app, &b, "ready").await;
    let r = delete(&app, "/v1/me", Some(&ta)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Alice's token is dead, her refresh token too.
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&ta), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = refresh(&app, &a["refresh_token"]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Bob is back to busy.
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&b), None).await.body["status"],
        "busy"
    );
    // The name is free again, with a new extension; the old token does not
    // act on the new alice.
    let a2 = register(&app, "alice").await;
    assert_eq!(a2["sip"]["extension"], "111002");
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&ta), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn refresh_rotates_and_detects_reuse() {
    let app = app();
    let a = register(&app, "alice").await;
    let r1 = a["refresh_token"].clone();
    let r = refresh(&app, &r1).await;
    assert_eq!(r.status, StatusCode::OK);
    let t2 = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&t2), None)
            .await
            .status,
        StatusCode::OK
    );
    // Reuse of r1: the family is revoked, including the fresh access token.
    let r = refresh(&app, &r1).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already used"));
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&t2), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let m = get(&app, "/metrics", None).await;
    assert!(
        m.text.contains("myturn_refresh_reuse_total 1"),
        "{}",
        m.text
    );
}

#[tokio::test]
async fn malformed_requests_get_json_4xx() {
    let app = app();
    let t = token(&register(&app, "alice").await);
    let raw = |method: &str, path: &str, ctype: Option<&str>, body: Vec<u8>| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {t}"));
        if let Some(c) = ctype {
            b = b.header("content-type", c);
        }
        b.body(Body::from(body)).unwrap()
    };
    let json = |method: &str, path: &str, body: &[u8]| {
        raw(method, path, Some("application/json"), body.to_vec())
    };
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            json("POST", "/v1/users", br#"{"name":"bob","admin":true}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json("POST", "/v1/users", br#"{"name":"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            json("POST", "/v1/users", br#"{"name":42}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json("POST", "/v1/users", b"\xff\xfe"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(
                "POST",
                "/v1/users",
                Some("text/plain"),
                br#"{"name":"bob"}"#.to_vec(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw("POST", "/v1/users", None, br#"{"name":"bob"}"#.to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            json(
                "POST",
                "/v1/users",
                format!(r#"{{"name":"{}"}}"#, "a".repeat(20_000)).as_bytes(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            json("PUT", "/v1/me/status", br#"{"status":"in_call"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json("PUT", "/v1/me/status", br#"{"status":"paired"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            raw("GET", "/v1/nope", None, vec![]),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            raw("PATCH", "/v1/me", None, vec![]),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            raw("GET", "/v1/me/peer?wait=1&x=2", None, vec![]),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
    ];
    for (req, status, code) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let r = send(&app, req).await;
        assert_eq!(r.status, status, "{what}: {}", r.text);
        assert_eq!(error_code(&r), code, "{what}");
    }
    // Nothing of that changed alice or created bob.
    assert!(app
        .state
        .with_core(|c| c.state().find("bob").is_none())
        .unwrap());
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&t), None).await.body["status"],
        "busy"
    );
}

#[tokio::test]
async fn admin_api_is_guarded_and_redacts_secrets() {
    let mut cfg = config();
    let dir = tempfile::tempdir().unwrap();
    cfg.pbx = myturn_server::pbx::PbxKind::Asterisk;
    cfg.asterisk_conf_dir = dir.path().into();
    let app = app_with(&cfg);
    let alice = register(&app, "alice").await;
    let bob = register(&app, "bob").await;
    // A user token is not an admin token.
    for path in ["/v1/admin/users", "/v1/admin/pairs", "/v1/admin/sip-conf"] {
        for tok in [
            None,
            Some(token(&alice)),
            Some("admin-token-for-tests-012345678X".to_owned()),
        ] {
            let r = get(&app, path, tok.as_deref()).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        }
    }
    let users = get(&app, "/v1/admin/users", Some(ADMIN)).await;
    let list = users.body["users"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "alice");
    assert_eq!(list[0]["status"], "busy");
    assert_eq!(list[0]["extension"], "111000");
    assert!(list[0]["since"].as_u64().unwrap() > 1_700_000_000);
    let conf = get(&app, "/v1/admin/sip-conf", Some(ADMIN)).await;
    assert_eq!(conf.body["pbx"], "asterisk");
    let text = conf.text.clone();
    assert!(
        text.contains("[alice]") && text.contains("Dial(SIP/bob,60)"),
        "{text}"
    );
    for u in [&alice, &bob] {
        assert!(!text.contains(u["sip"]["password"].as_str().unwrap()));
    }
    assert_eq!(text.matches("secret=<redacted>").count(), 2);
    // Kick bob: gone, his token dead, 404 the second time.
    let r = delete(&app, "/v1/admin/users/BOB", Some(ADMIN)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&token(&bob)), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = delete(&app, "/v1/admin/users/bob", Some(ADMIN)).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let conf = get(&app, "/v1/admin/sip-conf", Some(ADMIN)).await;
    assert!(!conf.text.contains("[bob]"));
}

#[tokio::test]
async fn admin_api_is_off_without_a_token() {
    let mut cfg = config();
    cfg.admin_token = None;
    let app = app_with(&cfg);
    let r = get(&app, "/v1/admin/users", Some(ADMIN)).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
}

#[tokio::test]
async fn short_admin_tokens_are_refused_at_start() {
    let mut cfg = config();
    cfg.admin_token = Some("short".into());
    let e = myturn_server::App::new(&cfg, None).unwrap_err();
    assert!(e.to_string().contains("at least 16"), "{e}");
}

#[tokio::test]
async fn healthz_and_metrics() {
    let app = app();
    let a = token(&register(&app, "alice").await);
    register(&app, "bob").await;
    set_status(&app, &a, "ready").await;
    let h = get(&app, "/healthz", None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["status"], "ok");
    assert_eq!(h.body["pbx"], "builtin", "the built-in PBX is the default");
    assert_eq!(h.body["users"], 2);
    let m = get(&app, "/metrics", None).await;
    assert!(m.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    for line in [
        "myturn_users{status=\"ready\"} 1",
        "myturn_users{status=\"busy\"} 1",
        "myturn_waiting_users 1",
        "myturn_registrations_total 2",
        "myturn_pairings_total 0",
        "myturn_http_requests_total{method=\"POST\",route=\"/v1/users\",status=\"201\"} 2",
        "myturn_sip_bindings 0",
        "myturn_sip_blocked_sources 0",
        "myturn_sip_auth_failures_total 0",
    ] {
        assert!(m.text.contains(line), "missing {line}:\n{}", m.text);
    }
    assert!(!m.text.contains("alice"), "metrics must not name users");
}

#[tokio::test]
async fn readyz_waits_for_the_pbx_to_hold_the_state() {
    // The built-in PBX holds the state from the start: ready.
    let r = get(&app(), "/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ready");
    // Asterisk before its first sync (no task has written its files):
    // not ready, and the body says why; /healthz still answers 200.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.pbx = myturn_server::config::PbxKind::Asterisk;
    cfg.asterisk_conf_dir = dir.path().to_path_buf();
    let app = app_with(&cfg);
    let r = get(&app, "/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&r), "unavailable");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("asterisk") && msg.contains("first sync"),
        "{msg}"
    );
    assert_eq!(get(&app, "/healthz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn silent_users_expire_and_the_partner_is_freed() {
    let mut cfg = config();
    cfg.lease = 5;
    let app = app_with(&cfg);
    let a = token(&register(&app, "alice").await);
    let b = token(&register(&app, "bob").await);
    set_status(&app, &a, "ready").await;
    set_status(&app, &b, "ready").await;
    // Bob keeps talking to the server; alice goes silent.
    let later = std::time::Instant::now() + std::time::Duration::from_secs(6);
    let at = myturn_server::clock::At::new(later, (myturn_server::clock::unix_now() + 6) * 1000);
    app.state
        .with_core(|c| {
            let bob = c.state().find("bob").unwrap().id;
            c.state().user_mut(bob).unwrap().last_seen = at.unix_ms;
        })
        .unwrap();
    let gone = app.state.sweep(at).await.unwrap().expired;
    assert_eq!(gone, vec!["alice".to_owned()]);
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&a), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, Method::GET, "/v1/me", Some(&b), None).await.body["status"],
        "busy"
    );
    let m = get(&app, "/metrics", None).await;
    assert!(m
        .text
        .contains("myturn_removals_total{reason=\"expired\"} 1"));
}
