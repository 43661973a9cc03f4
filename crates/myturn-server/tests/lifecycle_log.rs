//! The real `myturn-server` binary logging JSON at its default level
//! (no `MYTURN_LOG`) through a whole session: registration, SIP
//! REGISTER with the built-in PBX, admission, pairing on a shared
//! interest, the call set up, a real SIP call through the PBX, its end,
//! refused tokens, a reused refresh token, a kick and a ban. Each
//! lifecycle line is there with its fields typed, and no value carries
//! Rust debug formatting (`Some(..)`, a quoted `[..]`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::sip::offer;
use common::{Api, ADMIN};
use myturn_sip::driver::SipHandle;
use myturn_sip::ua::{EndedBy, Event};
use myturn_testkit::ports::{free_tcp_port, free_udp_port};
use myturn_testkit::sip::{ended, expect};
use serde_json::{json, Value};

async fn agent(user: &Value) -> SipHandle {
    let mut h = common::sip::agent(user).await;
    h.register().await.unwrap();
    expect(&mut h, "Registered", |e| match e {
        Event::Registered { .. } => Some(()),
        Event::RegistrationFailed { code, reason } => panic!("{code} {reason}"),
        _ => None,
    })
    .await;
    h
}

async fn ready(api: &Api, user: &Value) {
    let body = json!({ "status": "ready", "interests": ["chess", "jazz"] });
    let r = api
        .call(
            reqwest::Method::PUT,
            "/v1/me/status",
            Some(user["token"].as_str().unwrap()),
            Some(body),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
}

/// Every string anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The one line with `message`, or a failure showing the log.
fn line<'a>(lines: &'a [Value], message: &str, log: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["message"] == message).collect();
    assert!(!found.is_empty(), "no {message:?} line in:\n{log}");
    found[0]
}

fn count(lines: &[Value], message: &str) -> usize {
    lines.iter().filter(|l| l["message"] == message).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_session_is_told_at_info_in_plain_json() {
    let port = free_tcp_port();
    let sip_port = free_udp_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_myturn-server"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--sip-listen", &format!("127.0.0.1:{sip_port}")])
        .args(["--media-ports", "29900-29919", "--admission", "moderated"])
        .args(["--log-format", "json"])
        .env_remove("MYTURN_LOG")
        .env("MYTURN_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let api = Api::new(format!("http://127.0.0.1:{port}"));
    api.wait_until_up().await;

    let alice = api.register("alice").await;
    let bob = api.register("bob").await;
    let mut a = agent(&alice).await;
    let mut b = agent(&bob).await;
    ready(&api, &alice).await;
    ready(&api, &bob).await;
    let r = api
        .admin_post("/v1/admin/admit", json!({ "all": true }))
        .await;
    assert_eq!(r.status(), 200);
    for u in [&alice, &bob] {
        let r = api
            .status(u["token"].as_str().unwrap(), "ready_to_talk")
            .await;
        assert!(r.status().is_success(), "{}", r.status());
    }
    // The call itself, through the built-in PBX and its relay.
    let ext = bob["sip"]["extension"].as_str().unwrap();
    let ca = a.invite(ext, &offer(4000)).await.unwrap();
    let cb = expect(&mut b, "IncomingCall", |e| match e {
        Event::IncomingCall { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    b.answer(cb, &offer(5000)).await.unwrap();
    expect(&mut a, "Answered", |e| match e {
        Event::Answered { call, .. } if *call == ca => Some(()),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.hangup(ca).await.unwrap();
    ended(&mut b, "CallEnded", EndedBy::Remote).await;
    let r = api.status(alice["token"].as_str().unwrap(), "busy").await;
    assert!(r.status().is_success());

    // Refusals: five bad admin tokens and three bad user tokens from one
    // client are one line each, then one count at the window's close.
    for _ in 0..5 {
        let r = api
            .get("/v1/admin/users", Some("not-the-admin-token"))
            .await;
        assert_eq!(r.status(), 401);
    }
    for _ in 0..3 {
        assert_eq!(api.get("/v1/me", Some("a.b.c")).await.status(), 401);
    }
    // A refresh token presented twice.
    let body = json!({ "refresh_token": alice["refresh_token"] });
    assert_eq!(
        api.post("/v1/session/refresh", None, body.clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        api.post("/v1/session/refresh", None, body).await.status(),
        401
    );
    // Moderation.
    let r = api
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/users/bob",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = api
        .admin_post(
            "/v1/admin/bans",
            json!({ "name": "mallory", "seconds": 60 }),
        )
        .await;
    assert_eq!(r.status(), 201);

    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let _ = child.wait();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    if std::env::var_os("MYTURN_SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    // No value anywhere in Rust debug formatting.
    let mut all = Vec::new();
    lines.iter().for_each(|l| strings(l, &mut all));
    for s in &all {
        assert!(!s.contains("Some("), "{s:?} in:\n{log}");
        assert!(
            !s.starts_with('['),
            "a list as a debug string {s:?} in:\n{log}"
        );
    }
    // Per-request lines are off by default.
    assert_eq!(count(&lines, "request"), 0, "{log}");

    let start = line(&lines, "myturn-server listening", &log);
    assert_eq!(start["sip"], format!("127.0.0.1:{sip_port}"));
    assert_eq!(start["admin_api"], true);
    assert!(start.get("conf_dir").is_none(), "{start}");
    assert!(start.get("trusted_proxies").is_none(), "{start}");

    let regs: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "user registered")
        .collect();
    assert_eq!(regs.len(), 2, "{log}");
    assert_eq!(regs[0]["level"], "INFO");
    assert_eq!(regs[0]["name"], "alice");
    assert_eq!(regs[0]["client"], "127.0.0.1");

    let sips: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "SIP registered")
        .collect();
    assert_eq!(
        sips.len(),
        2,
        "one line per binding, not per refresh: {log}"
    );
    assert_eq!(sips[0]["level"], "INFO");
    assert_eq!(sips[0]["transport"], "udp");
    let contact = sips[0]["contact"].as_str().unwrap();
    assert!(contact.contains("sip:alice@127.0.0.1:"), "{}", sips[0]);
    assert!(sips[0]["expires"].is_u64(), "{}", sips[0]);

    let admitted = line(&lines, "users admitted", &log);
    assert_eq!(admitted["by"], "admin");
    assert_eq!(admitted["count"], 2);
    let mut names: Vec<&str> = admitted["names"].as_str().unwrap().split(',').collect();
    names.sort_unstable();
    assert_eq!(names, ["alice", "bob"]);

    let paired = line(&lines, "paired", &log);
    assert_eq!(paired["level"], "INFO");
    let pair_id = paired["pair_id"].as_str().unwrap();
    assert_eq!(pair_id.len(), 32, "{paired}");
    let mut two = [
        paired["user"].as_str().unwrap(),
        paired["peer"].as_str().unwrap(),
    ];
    two.sort_unstable();
    assert_eq!(two, ["alice", "bob"]);
    assert_eq!(paired["shared_interests"], "chess,jazz");
    assert_eq!(paired["kind"], "shared");

    let setup = line(&lines, "call set up", &log);
    assert_eq!(setup["pair_id"], pair_id);
    assert!(setup["setup_ms"].is_u64(), "{setup}");
    assert_eq!(setup["media"], "relayed");

    let end = line(&lines, "call ended", &log);
    assert_eq!(end["pair_id"], pair_id);
    assert_eq!(end["user"], "alice");
    assert_eq!(end["peer"], "bob");
    assert_eq!(end["reason"], "hung_up");
    assert!(end["duration_ms"].as_u64().unwrap() >= 300, "{end}");
    assert!(end["duration_secs"].is_u64(), "{end}");
    assert_eq!(end["media"], "relayed");

    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "token refused")
        .collect();
    assert_eq!(refused.len(), 2, "one per client and token kind: {log}");
    let admin = refused.iter().find(|l| l["token"] == "admin").unwrap();
    assert_eq!(admin["client"], "127.0.0.1");
    assert_eq!(admin["count"], 1);
    assert_eq!(admin["level"], "WARN");
    let counted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "tokens refused")
        .collect();
    let admin = counted.iter().find(|l| l["token"] == "admin").unwrap();
    assert_eq!(admin["count"], 5, "{log}");
    assert!(admin["window_secs"].is_u64());
    let user = counted.iter().find(|l| l["token"] == "user").unwrap();
    assert_eq!(
        user["count"], 4,
        "three bad tokens and the reused refresh: {log}"
    );

    let reuse = line(
        &lines,
        "spent refresh token presented again: session family revoked",
        &log,
    );
    assert_eq!(reuse["user"], "alice");
    assert_eq!(reuse["client"], "127.0.0.1");

    let kick = line(&lines, "user kicked", &log);
    assert_eq!(kick["name"], "bob");
    assert_eq!(kick["by"], "admin");
    assert_eq!(kick["admin_client"], "127.0.0.1");
    let ban = line(&lines, "name banned", &log);
    assert_eq!(ban["name"], "mallory");
    assert_eq!(ban["seconds"], 60);
    assert_eq!(ban["by"], "admin");
}
