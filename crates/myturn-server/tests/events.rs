//! Realtime events, session security, lobby and moderation, with real
//! WebSocket clients (tokio-tungstenite) and real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::token as tok;
use common::ws::{next, none_of, say, until};
use common::Live;
use futures_util::StreamExt;
use myturn_server::core::cases::views::PbxUsers;
use myturn_server::core::{State as _, StateExt as _};
use myturn_server::{Admission, Config, Switch};
use serde_json::{json, Value};

async fn env_with(f: impl FnOnce(&mut Config)) -> Live {
    let mut cfg = common::config();
    f(&mut cfg);
    common::live(&cfg).await
}

async fn env() -> Live {
    env_with(|_| {}).await
}

#[tokio::test]
async fn pairing_is_pushed_to_both_sides() {
    let e = env().await;
    let (a, b) = (e.register("alice").await, e.register("bob").await);
    let mut wa = e.ws(&tok(&a)).await;
    let mut wb = e.ws(&tok(&b)).await;
    assert_eq!(e.status(&tok(&a), "ready").await.status(), 200);
    let t0 = Instant::now();
    e.status(&tok(&b), "ready").await;
    let pa = until(&mut wa, "paired").await;
    let pb = until(&mut wb, "paired").await;
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(pa["peer"], json!({"name": "bob", "extension": "111001"}));
    assert_eq!(pb["peer"]["name"], "alice");
    assert_ne!(pa["role"], pb["role"]);
    assert_eq!(pa["pair_id"], pb["pair_id"], "one pair, one id");
    assert_eq!(pa["pair_id"].as_str().map(str::len), Some(32));
    let (callee_tok, mut caller_ws, mut callee_ws) = if pa["role"] == "callee" {
        (tok(&a), wb, wa)
    } else {
        (tok(&b), wa, wb)
    };
    e.status(&callee_tok, "ready_to_talk").await;
    until(&mut caller_ws, "peer_ready_to_talk").await;
    e.status(&callee_tok, "busy").await;
    let left = until(&mut caller_ws, "peer_left").await;
    assert_eq!(left["reason"], "hung_up");
    let st = until(&mut caller_ws, "status").await;
    assert_eq!(st["status"], "busy");
    // The callee's own stream saw its status change too.
    let st = until(&mut callee_ws, "status").await;
    assert!(st["status"].is_string());
}

#[tokio::test]
async fn subprotocol_auth_and_refusals() {
    let e = env().await;
    let a = e.register("alice").await;
    // Token in the subprotocol list, as browsers must.
    let protocols = format!("myturn.v1, bearer.{}", tok(&a));
    let req = e.ws_request("/v1/events", &[("sec-websocket-protocol", protocols)]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "myturn.v1");
    assert_eq!(next(&mut ws).await["name"], "alice");
    // Token in the URL: refused, even a valid one.
    let (status, body) = e
        .ws_refused(&format!("/v1/events?token={}", tok(&a)), &[])
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (400, "token_in_url")
    );
    // No token, garbage token, user token on the admin stream.
    assert_eq!(e.ws_refused("/v1/events", &[]).await.0, 401);
    assert_eq!(
        e.ws_refused("/v1/events", &[("authorization", "Bearer nope".into())])
            .await
            .0,
        401
    );
    assert_eq!(
        e.ws_refused(
            "/v1/admin/events",
            &[("authorization", format!("Bearer {}", tok(&a)))]
        )
        .await
        .0,
        401
    );
    // A plain GET without the upgrade is told to upgrade: a JSON 426
    // naming the protocol.
    let r = e.get("/v1/events", Some(&tok(&a))).await;
    assert_eq!(r.status(), 426);
    assert_eq!(r.headers()["upgrade"], "websocket");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "websocket_required"
    );
}

#[tokio::test]
async fn refresh_reuse_revokes_the_family_and_closes_its_streams() {
    let e = env().await;
    let a = e.register("alice").await;
    let mut ws = e.ws(&tok(&a)).await;
    let r1 = a["refresh_token"].clone();
    let refresh = |t: Value| e.post("/v1/session/refresh", None, json!({ "refresh_token": t }));
    let r = refresh(r1.clone()).await;
    assert_eq!(r.status(), 200);
    let pair: Value = r.json().await.unwrap();
    assert_ne!(pair["refresh_token"], r1);
    // The stolen r1 comes back: 401, everything of the family dies.
    assert_eq!(refresh(r1).await.status(), 401);
    assert_eq!(
        until(&mut ws, "session_expired").await["type"],
        "session_expired"
    );
    let closed = next(&mut ws).await;
    assert_eq!(closed, json!({"type": "__close", "code": 4001}));
    let me = e.get("/v1/me", Some(pair["token"].as_str().unwrap())).await;
    assert_eq!(me.status(), 401);
    assert_eq!(refresh(pair["refresh_token"].clone()).await.status(), 401);
    let m = e.metrics().await;
    assert!(m.contains("myturn_refresh_reuse_total 1"));
}

#[tokio::test]
async fn expiring_tokens_warn_then_close_unless_reauthed() {
    let e = env().await;
    let a = e.register("alice").await;
    let claims = e
        .app
        .state
        .jwt
        .verify(&tok(&a), myturn_server::clock::unix_now())
        .unwrap();
    let now = myturn_server::clock::unix_now();
    let ttl = e.app.state.jwt.ttl_secs;
    // A token with 2 s left.
    let short = e
        .app
        .state
        .jwt
        .issue("alice", claims.uid, claims.sid, now + 2 - ttl);
    let mut ws = e.ws(&short).await;
    let warn = until(&mut ws, "session_expiring").await;
    assert_eq!(warn["expires_at"], now + 2);
    assert_eq!(
        until(&mut ws, "session_expired").await["type"],
        "session_expired"
    );
    assert_eq!(next(&mut ws).await["code"], 4001);
    // Same again, but the client swaps in a fresh token: the stream lives on.
    let short = e.app.state.jwt.issue(
        "alice",
        claims.uid,
        claims.sid,
        myturn_server::clock::unix_now() + 2 - ttl,
    );
    let mut ws = e.ws(&short).await;
    until(&mut ws, "session_expiring").await;
    say(&mut ws, json!({"type": "reauth", "token": tok(&a)})).await;
    none_of(&mut ws, "session_expired", Duration::from_secs(3)).await;
    say(&mut ws, json!({"type": "ping", "id": 7})).await;
    assert_eq!(until(&mut ws, "pong").await["id"], 7);
    // A token of someone else is refused.
    let b = e.register("bob").await;
    say(&mut ws, json!({"type": "reauth", "token": tok(&b)})).await;
    assert_eq!(until(&mut ws, "error").await["code"], "unauthorized");
    // Expired access tokens get 401 on HTTP too.
    let r = e.get("/v1/me", Some(&short)).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn silent_users_expire_and_the_partner_hears_it() {
    let e = env_with(|c| c.lease = 2).await;
    let (a, b) = (e.register("alice").await, e.register("bob").await);
    let mut wb = e.ws(&tok(&b)).await;
    e.status(&tok(&a), "ready").await;
    e.status(&tok(&b), "ready").await;
    until(&mut wb, "paired").await;
    // Alice says nothing more; bob's open stream keeps him alive.
    let left = tokio::time::timeout(Duration::from_secs(6), until(&mut wb, "peer_left"))
        .await
        .unwrap();
    assert_eq!(left["reason"], "expired");
    assert_eq!(until(&mut wb, "status").await["status"], "busy");
    let users = e.admin_get("/v1/admin/users").await;
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["bob"]);
}

#[tokio::test]
async fn partners_leaving_together_leave_nobody_stuck() {
    let e = env_with(|c| c.rate_limits = Switch::Off).await;
    for round in 0..20 {
        let names: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| format!("{n}{round}x"))
            .collect();
        let mut toks = Vec::new();
        for n in &names {
            toks.push(tok(&e.register(n).await));
        }
        e.status(&toks[0], "ready").await;
        e.status(&toks[1], "ready").await;
        // a and b are paired; both leave at the same moment while c and d
        // arrive.
        let mut tasks = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            let (api, t) = (e.api.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                let r = if i < 2 {
                    api.delete("/v1/me", &t).await
                } else {
                    api.status(&t, "ready").await
                };
                r.status().as_u16()
            }));
        }
        for t in tasks {
            let s = t.await.unwrap();
            assert!(s == 204 || s == 200, "{s}");
        }
        let pairs = e.admin_get("/v1/admin/pairs").await["pairs"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(pairs.len(), 1, "round {round}: {pairs:?}");
        let mut two = vec![
            pairs[0]["caller"].as_str().unwrap().to_owned(),
            pairs[0]["callee"].as_str().unwrap().to_owned(),
        ];
        two.sort();
        assert_eq!(
            two,
            vec![names[2].clone(), names[3].clone()],
            "c and d found each other"
        );
        for t in &toks[2..] {
            e.delete("/v1/me", t).await;
        }
    }
}

#[tokio::test]
async fn moderated_admission_one_by_one_and_everyone() {
    let e = env_with(|c| c.admission = Admission::Moderated).await;
    let users: Vec<Value> =
        futures_util::future::join_all(["alice", "bob", "carol"].map(|n| e.register(n))).await;
    let mut wa = e.ws(&tok(&users[0])).await;
    let mut wc = e.ws(&tok(&users[2])).await;
    for u in &users {
        assert_eq!(
            e.status(&tok(u), "ready")
                .await
                .json::<Value>()
                .await
                .unwrap()["status"],
            "ready"
        );
    }
    assert_eq!(e.admin_get("/v1/admin/pairs").await["pairs"], json!([]));
    let r = e
        .admin_post("/v1/admin/admit", json!({"name": "ALICE"}))
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["admitted"],
        json!(["alice"])
    );
    until(&mut wa, "admitted").await;
    none_of(&mut wa, "paired", Duration::from_millis(200)).await;
    let r = e.admin_post("/v1/admin/admit", json!({"all": true})).await;
    let mut admitted: Vec<String> =
        serde_json::from_value(r.json::<Value>().await.unwrap()["admitted"].clone()).unwrap();
    admitted.sort();
    assert_eq!(admitted, vec!["bob", "carol"]);
    until(&mut wc, "admitted").await;
    until(&mut wa, "paired").await;
    let listed = e.admin_get("/v1/admin/users").await;
    assert!(listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["admitted"] == true));
    // Bad admit requests.
    assert_eq!(
        e.admin_post("/v1/admin/admit", json!({})).await.status(),
        400
    );
    assert_eq!(
        e.admin_post("/v1/admin/admit", json!({"name": "nobody"}))
            .await
            .status(),
        404
    );
    // Open admission has nothing to admit.
    let open = env().await;
    assert_eq!(
        open.admin_post("/v1/admin/admit", json!({"all": true}))
            .await
            .status(),
        409
    );
}

#[tokio::test]
async fn lobby_chat_fans_out_to_waiting_users_and_admins() {
    let e = env_with(|c| c.admission = Admission::Moderated).await;
    let users: Vec<Value> =
        futures_util::future::join_all(["alice", "bob", "carol", "dave"].map(|n| e.register(n)))
            .await;
    let mut socks = Vec::new();
    for u in &users[..3] {
        e.status(&tok(u), "ready").await;
        socks.push(e.ws(&tok(u)).await);
    }
    let mut dave = e.ws(&tok(&users[3])).await; // busy: not in the lobby
    let mut admin = e.ws_at("/v1/admin/events", common::ADMIN).await;
    say(
        &mut socks[0],
        json!({"type": "lobby_say", "text": "cześć, anyone here? 👋"}),
    )
    .await;
    for ws in socks.iter_mut().chain(std::iter::once(&mut admin)) {
        let m = until(ws, "lobby_message").await;
        assert_eq!(
            (m["from"].as_str(), m["admin"].as_bool(), m["text"].as_str()),
            (Some("alice"), Some(false), Some("cześć, anyone here? 👋"))
        );
        assert!(m["at"].as_u64().unwrap() > 1_700_000_000_000);
    }
    none_of(&mut dave, "lobby_message", Duration::from_millis(200)).await;
    // Dave is not waiting: refused. Control characters: refused.
    say(&mut dave, json!({"type": "lobby_say", "text": "hi"})).await;
    assert_eq!(until(&mut dave, "error").await["code"], "not_in_lobby");
    say(
        &mut socks[1],
        json!({"type": "lobby_say", "text": "evil\u{1b}[2J"}),
    )
    .await;
    assert_eq!(until(&mut socks[1], "error").await["code"], "invalid_text");
    say(
        &mut socks[1],
        json!({"type": "lobby_say", "text": "x".repeat(501)}),
    )
    .await;
    assert_eq!(until(&mut socks[1], "error").await["code"], "invalid_text");
    say(&mut socks[1], json!({"type": "shout"})).await;
    assert_eq!(until(&mut socks[1], "error").await["code"], "invalid_event");
    // The moderator speaks, over the socket and over HTTP.
    say(&mut admin, json!({"type": "lobby_say", "text": "welcome"})).await;
    let m = until(&mut socks[2], "lobby_message").await;
    assert_eq!(
        (m["from"].as_str(), m["admin"].as_bool()),
        (Some("moderator"), Some(true))
    );
    let r = e
        .admin_post("/v1/admin/lobby", json!({"text": "pairing opens soon"}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["delivered"], 4);
    assert_eq!(
        until(&mut socks[0], "lobby_message").await["text"],
        "welcome"
    );
    assert_eq!(
        until(&mut socks[0], "lobby_message").await["text"],
        "pairing opens soon"
    );
    // Typing reaches the others, not the typist.
    say(&mut socks[0], json!({"type": "typing"})).await;
    assert_eq!(until(&mut socks[1], "lobby_typing").await["from"], "alice");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let e = env_with(|c| c.admission = Admission::Moderated).await;
    // Registration: 10 per address at once.
    let mut last = None;
    for i in 0..11 {
        let r = e.post_user(&format!("user{i}")).await;
        last = Some(r);
    }
    let r = last.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&retry), "{retry}");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );
    // Lobby: 5 lines at once per user.
    let users = e.app.state.run(PbxUsers).await.unwrap();
    assert_eq!(users.len(), 10);
    let t = {
        let uid = e
            .app
            .state
            .with_core(|core| {
                let u = core.state().find("user0").unwrap().id;
                let family = 1; // the first session family belongs to user0
                assert_eq!(core.state().family_owner(family), Some(u));
                u
            })
            .unwrap();
        e.app
            .state
            .jwt
            .issue("user0", uid, 1, myturn_server::clock::unix_now())
    };
    e.status(&t, "ready").await;
    let mut ws = e.ws(&t).await;
    for i in 0..6 {
        say(
            &mut ws,
            json!({"type": "lobby_say", "text": format!("line {i}")}),
        )
        .await;
    }
    // Replies to the sender and broadcast lines travel separately, so
    // they may interleave: count both.
    let (mut lines, mut limited) = (0, 0);
    while lines + limited < 6 {
        let ev = next(&mut ws).await;
        match ev["type"].as_str().unwrap() {
            "lobby_message" => lines += 1,
            "error" => {
                assert_eq!(ev["code"], "rate_limited");
                limited += 1;
            }
            _ => {}
        }
    }
    assert_eq!((lines, limited), (5, 1));
    // Reports: 3 at once per user (no partner yet is a 409, which also counts).
    let mut codes = Vec::new();
    for _ in 0..4 {
        let r = e
            .post("/v1/me/report", Some(&t), json!({"reason": "spam"}))
            .await;
        codes.push(r.status().as_u16());
    }
    assert_eq!(codes, vec![409, 409, 409, 429]);
    let m = e.metrics().await;
    assert!(m.contains("myturn_rate_limited_total 3"), "{m}");
}

#[tokio::test]
async fn websocket_caps_per_user() {
    let e = env_with(|c| c.max_sockets_per_user = 2).await;
    let a = e.register("alice").await;
    let _w1 = e.ws(&tok(&a)).await;
    let _w2 = e.ws(&tok(&a)).await;
    let (status, body) = e
        .ws_refused(
            "/v1/events",
            &[("authorization", format!("Bearer {}", tok(&a)))],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (429, "too_many_connections")
    );
    drop(_w1);
    // The slot frees once the server notices the close.
    let start = Instant::now();
    loop {
        let req = e.ws_request(
            "/v1/events",
            &[("authorization", format!("Bearer {}", tok(&a)))],
        );
        if tokio_tungstenite::connect_async(req).await.is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kick_ban_report_flow() {
    let e = env().await;
    let (a, b) = (e.register("alice").await, e.register("bob").await);
    // Nothing to report before the first partner.
    let r = e
        .post("/v1/me/report", Some(&tok(&a)), json!({"reason": "x"}))
        .await;
    assert_eq!(r.status(), 409);
    e.status(&tok(&a), "ready").await;
    e.status(&tok(&b), "ready").await;
    let r = e
        .post(
            "/v1/me/report",
            Some(&tok(&a)),
            json!({"reason": "was rude"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let reports = e.admin_get("/v1/admin/reports").await;
    assert_eq!(reports["reports"][0]["reporter"], "alice");
    assert_eq!(reports["reports"][0]["reported"], "bob");
    assert_eq!(reports["reports"][0]["reason"], "was rude");
    // Ban bob for an hour: he hears it, his stream closes, alice's pair ends.
    let mut wb = e.ws(&tok(&b)).await;
    let mut wa = e.ws(&tok(&a)).await;
    let r = e
        .admin_post("/v1/admin/bans", json!({"name": "Bob", "seconds": 3600}))
        .await;
    assert_eq!(r.status(), 201);
    let ban = until(&mut wb, "banned").await;
    assert!(ban["until"].as_u64().unwrap() > myturn_server::clock::unix_now() + 3500);
    assert_eq!(next(&mut wb).await["code"], 4003);
    assert_eq!(until(&mut wa, "peer_left").await["reason"], "banned");
    let r = e.post_user("bob").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "banned");
    assert_eq!(
        e.admin_get("/v1/admin/bans").await["bans"][0]["name"],
        "bob"
    );
    assert_eq!(
        e.admin_post("/v1/admin/bans", json!({"name": "bob", "seconds": 0}))
            .await
            .status(),
        400
    );
    let r = e.delete("/v1/admin/bans/BOB", common::ADMIN).await;
    assert_eq!(r.status(), 204);
    e.register("bob").await;
    // Kick: kicked event, close 4003.
    let kicked = e.register("carol").await;
    let mut wc = e.ws(&tok(&kicked)).await;
    let r = e.delete("/v1/admin/users/carol", common::ADMIN).await;
    assert_eq!(r.status(), 204);
    until(&mut wc, "kicked").await;
    assert_eq!(next(&mut wc).await["code"], 4003);
}

#[tokio::test]
async fn a_closed_stream_leaves_the_pool_and_the_pair_after_the_grace() {
    let e = env_with(|c| c.stream_grace = 1).await;
    let [ghost, a, b] = e.register_all(["ghost", "alice", "bob"]).await;
    // The ghost waits with its stream open, then its client dies.
    let wg = e.ws(&tok(&ghost)).await;
    assert_eq!(e.status(&tok(&ghost), "ready").await.status(), 200);
    drop(wg);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    // Past the grace it is out of the pool: a newcomer is not paired with it.
    let mut wa = e.ws(&tok(&a)).await;
    let r: Value = e.status(&tok(&a), "ready").await.json().await.unwrap();
    assert_eq!(r["status"], "ready", "alice waits, nobody live is there");
    none_of(&mut wa, "paired", Duration::from_millis(300)).await;
    let users = e.admin_get("/v1/admin/users").await;
    let ghost_status = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "ghost")
        .map(|u| u["status"].clone());
    assert_eq!(
        ghost_status,
        Some(json!("busy")),
        "the ghost keeps its account (HTTP lease), not its place: {users}"
    );

    // A live newcomer is paired with alice at once.
    let mut wb = e.ws(&tok(&b)).await;
    e.status(&tok(&b), "ready").await;
    until(&mut wa, "paired").await;
    until(&mut wb, "paired").await;
    // Bob's client dies mid-pair: alice hears it once the grace is over.
    let t0 = std::time::Instant::now();
    drop(wb);
    let left = until(&mut wa, "peer_left").await;
    assert_eq!(left["reason"], "disconnected");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "told after {:?} (grace 1 s)",
        t0.elapsed()
    );
}

#[tokio::test]
async fn a_stream_that_reconnects_within_the_grace_keeps_its_place() {
    let e = env_with(|c| c.stream_grace = 2).await;
    let (a, b) = (e.register("alice").await, e.register("bob").await);
    let wa = e.ws(&tok(&a)).await;
    e.status(&tok(&a), "ready").await;
    drop(wa);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut wa = e.ws(&tok(&a)).await;
    // Past the first stream's grace, reading (so pings get their pongs,
    // as any live client's do).
    let _ = tokio::time::timeout(Duration::from_millis(2500), async {
        while wa.next().await.is_some() {}
    })
    .await;
    let mut wb = e.ws(&tok(&b)).await;
    e.status(&tok(&b), "ready").await;
    until(&mut wa, "paired").await;
    until(&mut wb, "paired").await;
}

#[tokio::test]
async fn a_pair_whose_call_never_starts_is_ended_after_the_answer_timeout() {
    let e = env_with(|c| c.answer_timeout = 1).await;
    let [a, b, c] = e.register_all(["alice", "bob", "carol"]).await;
    let (mut wa, mut wb) = (e.ws(&tok(&a)).await, e.ws(&tok(&b)).await);
    e.status(&tok(&a), "ready").await;
    e.status(&tok(&b), "ready").await;
    let pa = until(&mut wa, "paired").await;
    until(&mut wb, "paired").await;
    // The caller says ready_to_talk; the callee never does (its client
    // hangs): the callee is blamed and leaves the pool.
    let (caller, callee, mut wcaller) = if pa["role"] == "caller" {
        (&a, &b, wa)
    } else {
        (&b, &a, wb)
    };
    e.status(&tok(caller), "ready_to_talk").await;
    let t0 = std::time::Instant::now();
    let left = until(&mut wcaller, "peer_left").await;
    assert_eq!(left["reason"], "no_answer");
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "told after {waited:?} (timeout 1 s)"
    );
    // The live side draws again and gets the newcomer, not the laggard.
    let mut wc = e.ws(&tok(&c)).await;
    e.status(&tok(&c), "ready").await;
    e.status(&tok(caller), "ready").await;
    let paired = until(&mut wc, "paired").await;
    let callee_name = if callee == &a { "alice" } else { "bob" };
    assert_ne!(paired["peer"]["name"], callee_name);
}

#[tokio::test]
async fn the_admin_stream_hears_every_change_as_it_happens() {
    let e = env().await;
    // A line said before a console connects: a new admin stream hears it
    // first.
    let r = e
        .admin_post("/v1/admin/lobby", json!({"text": "said early"}))
        .await;
    assert_eq!(r.status(), 202);
    let mut admin = e.ws_at("/v1/admin/events", common::ADMIN).await;
    let early = next(&mut admin).await;
    assert_eq!(
        (early["type"].as_str(), early["text"].as_str()),
        (Some("lobby_message"), Some("said early"))
    );

    let alice = tok(&e.register("alice").await);
    let m = until(&mut admin, "user_registered").await;
    assert_eq!(
        (m["user"]["name"].as_str(), m["user"]["status"].as_str()),
        (Some("alice"), Some("busy"))
    );
    e.status(&alice, "ready").await;
    let m = until(&mut admin, "user_status").await;
    assert_eq!(
        (m["user"]["name"].as_str(), m["user"]["status"].as_str()),
        (Some("alice"), Some("ready"))
    );

    let bob = tok(&e.register("bob").await);
    assert_eq!(
        until(&mut admin, "user_registered").await["user"]["name"],
        "bob"
    );
    e.status(&bob, "ready").await;
    let made = until(&mut admin, "pair_made").await["pair"].clone();
    let mut names = [made["caller"].clone(), made["callee"].clone()];
    names.sort_by_key(|v| v.to_string());
    assert_eq!(names, [json!("alice"), json!("bob")], "{made}");
    assert_eq!(made["in_call"], false);
    // The same row as GET /v1/admin/pairs.
    let pairs = e.admin_get("/v1/admin/pairs").await;
    assert_eq!(pairs["pairs"][0], made);

    e.status(&alice, "ready_to_talk").await;
    e.status(&bob, "ready_to_talk").await;
    let started = until(&mut admin, "call_started").await["pair"].clone();
    assert_eq!(
        (&started["pair_id"], &started["in_call"]),
        (&made["pair_id"], &json!(true))
    );
    assert!(started["call_since"].as_u64().is_some(), "{started}");

    let r = e.delete("/v1/me", &alice).await;
    assert!(r.status().is_success());
    let ended = until(&mut admin, "pair_ended").await;
    assert_eq!(
        (&ended["pair_id"], ended["reason"].as_str()),
        (&made["pair_id"], Some("logged_out"))
    );
    assert!(ended["call_secs"].as_u64().is_some(), "{ended}");
    let left = until(&mut admin, "user_left").await;
    assert_eq!(
        (left["name"].as_str(), left["reason"].as_str()),
        (Some("alice"), Some("logged_out"))
    );

    let r = e
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/users/bob",
            Some(common::ADMIN),
            None,
        )
        .await;
    assert!(r.status().is_success());
    let left = until(&mut admin, "user_left").await;
    assert_eq!(
        (left["name"].as_str(), left["reason"].as_str()),
        (Some("bob"), Some("kicked"))
    );
    // Nobody is left: the stream says so and the API agrees.
    let users = e.admin_get("/v1/admin/users").await;
    assert_eq!(users["users"], json!([]));
}
