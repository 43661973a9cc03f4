//! Interests over the HTTP API: the rule and the operator's list refuse
//! bad tags with a 400 that names them; a shared interest pairs and both
//! sides are told; the admin views and `/metrics` show them; the PBX
//! never sees them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

async fn ready(app: &myturn_server::App, token: &str, body: Value) -> Resp {
    call(app, Method::PUT, "/v1/me/status", Some(token), Some(body)).await
}

async fn peer(app: &myturn_server::App, token: &str) -> Resp {
    call(app, Method::GET, "/v1/me/peer", Some(token), None).await
}

#[tokio::test]
async fn bad_interests_get_a_400_that_names_the_tag_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("blocklist.txt");
    std::fs::write(&list, "# operator's list\nCheap Pills\n").unwrap();
    let mut cfg = config();
    cfg.interest_blocklist = Some(list);
    let app = app_with(&cfg);
    let t = token(&register(&app, "alice").await);
    let ok = ready(
        &app,
        &t,
        json!({"status": "ready", "interests": ["Music", " music "]}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        ok.body["interests"],
        json!(["music"]),
        "normalised, deduplicated"
    );
    set_status(&app, &t, "busy").await;
    let eleven: Vec<String> = (0..11).map(|i| format!("tag{i}")).collect();
    let cases = [
        (json!(eleven), "invalid_interests", "11 interests"),
        (
            json!(["a".repeat(25)]),
            "invalid_interests",
            "aaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        (json!(["ring\u{7}bell"]), "invalid_interests", "ring"),
        (json!(["<script>"]), "invalid_interests", "<script>"),
        (
            json!(["buy cheap pills"]),
            "interest_refused",
            "buy cheap pills",
        ),
        (json!("music"), "invalid_body", "sequence"),
    ];
    for (interests, code, named) in cases {
        let r = ready(&app, &t, json!({"status": "ready", "interests": interests})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{interests}: {}", r.text);
        assert_eq!(error_code(&r), code, "{interests}");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(named), "{interests}: {msg}");
        // Nothing changed: still busy, the earlier interests kept.
        let me = call(&app, Method::GET, "/v1/me", Some(&t), None).await;
        assert_eq!(me.body["status"], "busy", "{interests}");
        assert_eq!(me.body["interests"], json!(["music"]), "{interests}");
    }
    // Interests go with ready only, and their options with interests.
    let r = ready(&app, &t, json!({"status": "busy", "interests": ["music"]})).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (StatusCode::BAD_REQUEST, "invalid_body".into())
    );
    let r = ready(&app, &t, json!({"status": "ready", "only_interests": true})).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (StatusCode::BAD_REQUEST, "invalid_body".into())
    );
    // An empty list means none: the plain draw.
    let r = ready(&app, &t, json!({"status": "ready", "interests": []})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("interests").is_none(), "none: {}", r.text);
}

#[tokio::test]
async fn a_shared_interest_pairs_and_both_are_told_what_they_share() {
    let app = app();
    let a = token(&register(&app, "alice").await);
    let b = token(&register(&app, "bob").await);
    let c = token(&register(&app, "carol").await);
    // Carol has none: she is not a shared match for alice.
    set_status(&app, &c, "ready").await;
    let r = ready(
        &app,
        &a,
        json!({"status": "ready", "interests": ["Jazz", "rust"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(peer(&app, &a).await.status, StatusCode::NO_CONTENT);
    let r = ready(
        &app,
        &b,
        json!({"status": "ready", "interests": ["chess", "RUST"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (me, other) in [(&a, "bob"), (&b, "alice")] {
        let p = peer(&app, me).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.text);
        assert_eq!(p.body["peer"]["name"], other);
        assert_eq!(p.body["shared_interests"], json!(["rust"]));
    }
    let pairs = call(&app, Method::GET, "/v1/admin/pairs", Some(ADMIN), None).await;
    assert_eq!(pairs.body["pairs"][0]["shared_interests"], json!(["rust"]));
    let users = call(&app, Method::GET, "/v1/admin/users", Some(ADMIN), None).await;
    let alice = users.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(alice["interests"], json!(["jazz", "rust"]));
    let m = call(&app, Method::GET, "/metrics", None, None).await;
    assert!(
        m.text
            .contains("myturn_pairings_by_kind_total{kind=\"shared\"} 1"),
        "{}",
        m.text
    );
    assert!(m
        .text
        .contains("myturn_pair_wait_seconds_count{kind=\"shared\"} 2"));
    assert!(m
        .text
        .contains("myturn_pairings_by_kind_total{kind=\"plain\"} 0"));
    // The PBX's view never carries a tag.
    let conf = call(&app, Method::GET, "/v1/admin/sip-conf", Some(ADMIN), None).await;
    assert!(
        !conf.text.contains("rust") && !conf.text.contains("jazz"),
        "{}",
        conf.text
    );
}

#[tokio::test]
async fn the_console_sees_the_most_used_tags_of_those_waiting() {
    let mut cfg = config();
    cfg.interest_wait = 600;
    let app = app_with(&cfg);
    for (name, tags) in [
        ("alice", json!(["music", "rust"])),
        ("bob", json!(["music"])),
        ("carol", json!(["chess"])),
        ("dave", json!([])),
    ] {
        let t = token(&register(&app, name).await);
        let body = json!({"status": "ready", "interests": tags, "only_interests": true});
        let r = ready(&app, &t, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // alice and bob share music: paired. carol and dave wait.
    let v = call(&app, Method::GET, "/v1/admin/interests", Some(ADMIN), None).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.text);
    assert_eq!(v.body["waiting"], 2);
    assert_eq!(v.body["with_interests"], 1);
    assert_eq!(v.body["top"], json!([{"tag": "chess", "waiting": 1}]));
}
