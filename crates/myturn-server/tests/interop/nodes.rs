//! Several `myturn-server` nodes on one `redis-server` (issue #24): the
//! real binary, in processes of their own, sharing `--state redis://…`
//! and one `--jwt-key-file`, all started by the test.
//!
//! * Users of different nodes are paired and each told on its own node's
//!   stream; a token works on every node; a hang-up through a third node
//!   reaches the partner.
//! * Every node's admin stream hears every change, wherever it was made
//!   (users, pairs, lobby lines), and a new one the lobby's backlog.
//! * The perfect-matching race, 200 users over three nodes.
//! * A refresh token reused on another node is caught, and the family is
//!   revoked everywhere.
//! * A node killed mid-call: its partner hears `peer_left` within the
//!   lease, and once the lease ran out nothing of its user is left.
//! * A restarted node: its users' sessions live on, their streams open
//!   again.
//! * Redis killed and started again: nothing lost, pairing goes on.
//! * Redis stopped: 503 `state_unavailable`, `/healthz` says why; Redis
//!   back: service back with no restart.
//! * The built-in PBX refuses a second node; the Asterisk files have one
//!   writer, and the lease moves when it dies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use myturn_testkit::ports::free_tcp_port;
use myturn_testkit::process::Peer;
use myturn_testkit::redis::Redis;
use myturn_testkit::{skip, Scratch};
use serde_json::{json, Value};

use crate::common::ws::{until, Ws};
use crate::common::{token, Api, ADMIN};

/// Seconds of silence before a user is logged out, in these tests: long
/// enough for a dead node to be noticed (its heartbeat's 5 s) first.
const LEASE: u64 = 12;

fn ready() -> bool {
    skip::installed("redis-server") && skip::installed("redis-cli")
}

/// The shared parts: Redis, the token keys, a directory for logs.
struct Shared {
    redis: Redis,
    keys: PathBuf,
    dir: Scratch,
}

impl Shared {
    fn start() -> Shared {
        let dir = Scratch::new();
        let keys = dir.write(
            "jwt.key",
            "# the signing key, 64 hex characters\n\
             9f2c4e7a1b3d5f6081a2c3e4f5061728394a5b6c7d8e9f00112233445566778\n",
        );
        Shared {
            redis: Redis::start(),
            keys,
            dir,
        }
    }

    /// `redis-cli` on the state's DB: its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.redis.port().to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// One `myturn-server` process.
struct Node {
    name: &'static str,
    args: Vec<String>,
    dir: PathBuf,
    peer: Option<Peer>,
    api: Api,
}

impl Node {
    /// Starts node `name` on `shared`'s state with `--pbx none` and the
    /// flags in `extra`, and waits until it serves.
    async fn start(shared: &Shared, name: &'static str, extra: &[&str]) -> Node {
        let n = Node::spawn(shared, name, extra);
        n.api.wait_until_up().await;
        n
    }

    fn spawn(shared: &Shared, name: &'static str, extra: &[&str]) -> Node {
        let port = free_tcp_port();
        let mut args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--state".into(),
            shared.redis.url(),
            "--jwt-key-file".into(),
            shared.keys.display().to_string(),
            "--node-id".into(),
            name.into(),
            "--admin-token".into(),
            ADMIN.into(),
            "--rate-limits".into(),
            "off".into(),
        ];
        // Defaults a test may override through `extra`.
        let lease = LEASE.to_string();
        for (flag, value) in [
            ("--lease", lease.as_str()),
            ("--stream-grace", "1"),
            ("--pbx", "none"),
        ] {
            if !extra.contains(&flag) {
                args.extend([flag.into(), value.into()]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut n = Node {
            name,
            args,
            dir: shared.dir.path().to_owned(),
            peer: None,
            api: Api::new(format!("http://127.0.0.1:{port}")),
        };
        n.up();
        n
    }

    fn up(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_myturn-server"));
        cmd.args(&self.args).env("RUST_LOG", "info");
        self.peer = Some(Peer::spawn(self.name, &mut cmd, &self.dir));
    }

    /// SIGKILL: a crash, nothing said to anyone.
    fn kill(&mut self) {
        self.peer = None;
    }

    /// Starts it again, same name and port, and waits until it serves.
    async fn restart(&mut self) {
        self.kill();
        self.up();
        self.api.wait_until_up().await;
    }

    /// Waits for it to exit by itself: its exit code and log.
    fn exits(&mut self, within: Duration) -> (Option<i32>, String) {
        self.peer.take().unwrap().wait(within)
    }

    async fn register(&self, name: &str) -> (String, Value) {
        let v = self.api.register(name).await;
        (token(&v), v)
    }

    async fn set(&self, token: &str, status: &str) {
        let r = self.api.status(token, status).await;
        assert_eq!(r.status(), 200, "{status} on {}", self.name);
    }
}

/// `n` nodes on one state.
async fn nodes(shared: &Shared, names: &[&'static str]) -> Vec<Node> {
    let mut out = Vec::new();
    for &n in names {
        out.push(Node::start(shared, n, &[]).await);
    }
    out
}

/// Waits up to `within` for an event of `kind`, skipping the others.
async fn event_within(ws: &mut Ws, kind: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} within {within:?}"))
            .expect("stream ended")
            .expect("ws error");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            let e: Value = serde_json::from_str(t.as_str()).unwrap();
            if e["type"] == kind {
                return e;
            }
        }
    }
}

/// Polls `f` every 100 ms until it answers true, for at most `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < end, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The names of the users the state holds, as a node's admin API lists
/// them.
async fn user_names(api: &Api) -> Vec<String> {
    let mut names: Vec<String> = api.admin_get("/v1/admin/users").await["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn pairs(api: &Api) -> Vec<Value> {
    api.admin_get("/v1/admin/pairs").await["pairs"]
        .as_array()
        .unwrap()
        .clone()
}

/// Alice on `a`, bob on `b`, each with its stream on its own node, both
/// ready: paired, each told on its own stream. Their tokens and streams.
async fn pair_across(a: &Node, b: &Node) -> ((String, Ws), (String, Ws)) {
    let ((ta, _), (tb, _)) = (a.register("alice").await, b.register("bob").await);
    let mut wa = a.api.ws(&ta).await;
    let mut wb = b.api.ws(&tb).await;
    a.set(&ta, "ready").await;
    b.set(&tb, "ready").await;
    let pa = until(&mut wa, "paired").await;
    let pb = until(&mut wb, "paired").await;
    assert_eq!(pa["peer"]["name"], "bob");
    assert_eq!(pb["peer"]["name"], "alice");
    assert_ne!(pa["role"], pb["role"]);
    assert_eq!(pa["pair_id"], pb["pair_id"], "one pair, one id");
    ((ta, wa), (tb, wb))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_different_nodes_are_paired_and_told_on_their_own_nodes() {
    if !ready() {
        return;
    }
    let shared = Shared::start();
    let n = nodes(&shared, &["n1", "n2", "n3"]).await;
    let ((ta, mut wa), (tb, mut wb)) = pair_across(&n[0], &n[1]).await;
    // Any node answers for any user: one state, one key.
    let me = n[2].api.get_json("/v1/me", &ta).await;
    assert_eq!(me["status"], "paired");
    assert_eq!(me["name"], "alice");
    let peer = n[2].api.get_json("/v1/me/peer", &tb).await;
    assert_eq!(peer["peer"]["name"], "alice");
    // Bob hangs up through the third node: alice hears it on the first.
    n[2].set(&tb, "busy").await;
    let left = until(&mut wa, "peer_left").await;
    assert_eq!(left["reason"], "hung_up");
    let st = until(&mut wb, "status").await;
    assert_eq!(st["status"], "busy");
    // Every node reports the one state, and itself by name.
    for node in &n {
        let h: Value = node.api.get("/healthz", None).await.json().await.unwrap();
        assert_eq!(h["status"], "ok", "{h}");
        assert_eq!(h["state"], "redis");
        assert_eq!(h["node"], node.name);
        assert_eq!(h["users"], 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_a_moment_ago_hears_its_users_events_before_its_first_heartbeat_is_seen() {
    if !ready() {
        return;
    }
    // n1 learns of n2 from n2's heartbeats (every second); until then a
    // commit on n1 must still reach the users whose streams n2 holds.
    let shared = Shared::start();
    let n1 = Node::start(&shared, "n1", &[]).await;
    let n2 = Node::start(&shared, "n2", &[]).await;
    let ((tb, _), (ta, _)) = (n2.register("bob").await, n1.register("alice").await);
    let mut wb = n2.api.ws(&tb).await;
    let mut wa = n1.api.ws(&ta).await;
    n2.set(&tb, "ready").await;
    n1.set(&ta, "ready").await;
    let pb = event_within(&mut wb, "paired", Duration::from_secs(3)).await;
    assert_eq!(pb["peer"]["name"], "alice");
    let pa = event_within(&mut wa, "paired", Duration::from_secs(3)).await;
    assert_eq!(pa["pair_id"], pb["pair_id"]);
}

/// An admin stream read all along (its pongs answered, as a browser's
/// are, however slowly the test looks at it): its events, in order.
fn reading(mut ws: Ws) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                if tx.send(serde_json::from_str(t.as_str()).unwrap()).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

type Heard = tokio::sync::mpsc::UnboundedReceiver<Value>;

/// Waits up to `within` for an event of `kind` that `matches`, skipping
/// the others.
async fn heard(
    rx: &mut Heard,
    kind: &str,
    within: Duration,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} within {within:?}"))
            .expect("the admin stream ended");
        if e["type"] == kind && matches(&e) {
            return e;
        }
    }
}

async fn line(rx: &mut Heard, text: &str, within: Duration) -> Value {
    heard(rx, "lobby_message", within, |e| e["text"] == text).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nodes_admin_stream_hears_every_change_made_on_any_node() {
    if !ready() {
        return;
    }
    let shared = Shared::start();
    let n = nodes(&shared, &["n1", "n2"]).await;
    let mut admins = Vec::new();
    for node in &n {
        admins.push(reading(node.api.ws_at("/v1/admin/events", ADMIN).await));
    }
    let within = Duration::from_secs(5);
    let any = |_: &Value| true;
    // A node learns of a newly started one at its next heartbeat: until
    // then its deliveries for every node skip it. Wait until each console
    // hears a line said on the other node.
    for (from, to) in [(0, 1), (1, 0)] {
        let end = Instant::now() + Duration::from_secs(15);
        for i in 0.. {
            assert!(
                Instant::now() < end,
                "n{} never heard n{}",
                to + 1,
                from + 1
            );
            let text = format!("probe {i} from n{}", from + 1);
            let r = n[from]
                .api
                .admin_post("/v1/admin/lobby", json!({"text": text}))
                .await;
            assert_eq!(r.status(), 202);
            let wait = line(&mut admins[to], &text, within);
            if tokio::time::timeout(Duration::from_millis(500), wait)
                .await
                .is_ok()
            {
                break;
            }
        }
    }
    // Alice registers on n1, bob on n2: both consoles hear both.
    let (ta, _) = n[0].register("alice").await;
    let (tb, _) = n[1].register("bob").await;
    for rx in &mut admins {
        for name in ["alice", "bob"] {
            let m = heard(rx, "user_registered", within, any).await;
            assert_eq!(m["user"]["name"], name, "{m}");
        }
    }
    // Paired across the nodes: both consoles hear the one pair.
    n[0].set(&ta, "ready").await;
    n[1].set(&tb, "ready").await;
    let mut ids = Vec::new();
    for rx in &mut admins {
        let made = heard(rx, "pair_made", within, any).await;
        ids.push(made["pair"]["pair_id"].clone());
    }
    assert_eq!(ids[0], ids[1], "one pair, heard by both");
    assert_eq!(pairs(&n[0].api).await[0]["pair_id"], ids[0]);
    // Alice logs out through n2: both hear the pair end, then her leave.
    let r = n[1].api.delete("/v1/me", &ta).await;
    assert!(r.status().is_success());
    for rx in &mut admins {
        let ended = heard(rx, "pair_ended", within, any).await;
        assert_eq!(ended["reason"], "logged_out", "{ended}");
        let left = heard(rx, "user_left", within, any).await;
        assert_eq!(left["name"], "alice", "{left}");
    }
    // A lobby line said on n1 reaches n2's console, and a console opened
    // on n2 afterwards hears it first.
    let r = n[0]
        .api
        .admin_post("/v1/admin/lobby", json!({"text": "hello from n1"}))
        .await;
    assert_eq!(r.status(), 202);
    line(&mut admins[1], "hello from n1", within).await;
    let mut late = reading(n[1].api.ws_at("/v1/admin/events", ADMIN).await);
    line(&mut late, "hello from n1", within).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_users_over_three_nodes_make_a_perfect_matching() {
    if !ready() {
        return;
    }
    let shared = Shared::start();
    // The race's users go quiet once paired until the check at the end; on
    // a loaded machine that outlasted the 12 s lease and logged some out.
    let long = ["--lease", "120"];
    let mut n = Vec::new();
    for name in ["r1", "r2", "r3"] {
        n.push(Node::start(&shared, name, &long).await);
    }
    let apis: Vec<Api> = n.iter().map(|n| n.api.clone()).collect();
    crate::common::race::perfect_matching_race(&apis, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_reused_on_another_node_revokes_the_family_everywhere() {
    if !ready() {
        return;
    }
    let shared = Shared::start();
    let n = nodes(&shared, &["t1", "t2", "t3"]).await;
    let (_, a) = n[0].register("alice").await;
    let r1 = a["refresh_token"].clone();
    let refresh = |node: &Node, r: &Value| {
        let (api, body) = (node.api.clone(), json!({ "refresh_token": r }));
        async move { api.post("/v1/session/refresh", None, body).await }
    };
    let r = refresh(&n[1], &r1).await;
    assert_eq!(r.status(), 200);
    let t2 = token(&r.json().await.unwrap());
    assert_eq!(n[2].api.get("/v1/me", Some(&t2)).await.status(), 200);
    // The spent token again, on the third node: theft.
    let r = refresh(&n[2], &r1).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    // The fresh access token is dead on every node.
    for node in &n {
        assert_eq!(node.api.get("/v1/me", Some(&t2)).await.status(), 401);
    }
    assert!(n[2]
        .api
        .metrics()
        .await
        .contains("myturn_refresh_reuse_total 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_call_leaves_its_partner_told_within_the_lease_and_nothing_behind() {
    if !ready() {
        return;
    }
    let shared = Shared::start();
    let mut n = nodes(&shared, &["k1", "k2"]).await;
    let ((ta, wa), (tb, mut wb)) = pair_across(&n[0], &n[1]).await;
    n[0].set(&ta, "ready_to_talk").await;
    n[1].set(&tb, "ready_to_talk").await;
    let killed = Instant::now();
    n[0].kill();
    drop(wa);
    let left = event_within(&mut wb, "peer_left", Duration::from_secs(LEASE)).await;
    assert_eq!(left["reason"], "disconnected", "{left}");
    eprintln!("partner told {:?} after the kill", killed.elapsed());
    // Past alice's lease: logged out, and nothing of her or her node is
    // left in Redis.
    let survivor = n[1].api.clone();
    eventually("alice logged out", Duration::from_secs(LEASE + 5), || {
        let api = survivor.clone();
        async move { user_names(&api).await == ["bob"] }
    })
    .await;
    assert!(pairs(&survivor).await.is_empty());
    let keys = shared.cli(&["--scan", "--pattern", "*"]);
    assert!(!keys.contains("alice"), "alice's keys remain:\n{keys}");
    assert!(!keys.contains("k1"), "the dead node's keys remain:\n{keys}");
    assert_eq!(shared.cli(&["SMEMBERS", "{mt}:nodes"]).trim(), "k2");
    assert_eq!(shared.cli(&["SCARD", "{mt}:users"]).trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_users_sessions() {
    if !ready() {
        return;
    }
    let shared = Shared::start();
    let mut n = nodes(&shared, &["s1", "s2"]).await;
    let ((ta, wa), (tb, _wb)) = pair_across(&n[0], &n[1]).await;
    drop(wa);
    n[0].restart().await;
    // Within the grace, alice is back on the restarted node: same token,
    // same pair.
    let mut wa = n[0].api.ws(&ta).await;
    let me = n[0].api.get_json("/v1/me", &ta).await;
    assert_eq!(me["status"], "paired", "{me}");
    assert_eq!(
        n[1].api.get_json("/v1/me/peer", &tb).await["peer"]["name"],
        "alice"
    );
    // And hears her partner through it.
    n[1].set(&tb, "busy").await;
    assert_eq!(until(&mut wa, "peer_left").await["reason"], "hung_up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_started_again_loses_nothing_and_pairing_goes_on() {
    if !ready() {
        return;
    }
    let mut shared = Shared::start();
    // The streams below wait unread through the outage: a grace (and so
    // a ping interval) long enough that their silence is not a death.
    let long = ["--stream-grace", "30"];
    let n = [
        Node::start(&shared, "c1", &long).await,
        Node::start(&shared, "c2", &long).await,
    ];
    let ((ta, _wa), (tb, _wb)) = pair_across(&n[0], &n[1]).await;
    let (tc, _) = n[0].register("carol").await;
    let (td, _) = n[1].register("dave").await;
    let mut wc = n[0].api.ws(&tc).await;
    let mut wd = n[1].api.ws(&td).await;
    let before = (user_names(&n[0].api).await, pairs(&n[0].api).await);
    shared.redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    shared.redis.resume();
    // Every user is still logged in, the pair still stands.
    let api = n[1].api.clone();
    eventually(
        "the nodes reach Redis again",
        Duration::from_secs(10),
        || {
            let api = api.clone();
            async move { api.get("/v1/admin/users", Some(ADMIN)).await.status() == 200 }
        },
    )
    .await;
    // And their subscriptions: events published before a node subscribes
    // again are lost by design (its clients read the state again), so the
    // pairing below waits for both, as a client would notice nothing.
    let port = shared.redis.port();
    eventually(
        "both nodes subscribed to their channels again",
        Duration::from_secs(10),
        || async move {
            let out = std::process::Command::new("redis-cli")
                .args([
                    "-p",
                    &port.to_string(),
                    "pubsub",
                    "numsub",
                    "{mt}:ev:c1",
                    "{mt}:ev:c2",
                ])
                .output();
            out.is_ok_and(|o| {
                let text = String::from_utf8_lossy(&o.stdout).to_string();
                let counts: Vec<&str> = text.lines().skip(1).step_by(2).collect();
                counts.len() == 2 && counts.iter().all(|c| c.trim() != "0")
            })
        },
    )
    .await;
    assert_eq!(
        (user_names(&n[1].api).await, pairs(&n[1].api).await),
        before
    );
    for (t, status) in [
        (&ta, "paired"),
        (&tb, "paired"),
        (&tc, "busy"),
        (&td, "busy"),
    ] {
        assert_eq!(n[1].api.get_json("/v1/me", t).await["status"], status);
    }
    // Pairing goes on, told on streams opened before the restart.
    n[0].set(&tc, "ready").await;
    n[1].set(&td, "ready").await;
    assert_eq!(until(&mut wc, "paired").await["peer"]["name"], "dave");
    assert_eq!(until(&mut wd, "paired").await["peer"]["name"], "carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_answers_503_and_healthz_says_why_until_it_is_back() {
    if !ready() {
        return;
    }
    let mut shared = Shared::start();
    let n = nodes(&shared, &["d1"]).await;
    let (ta, _) = n[0].register("alice").await;
    shared.redis.stop();
    let r = n[0].api.post_user("bob").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "state_unavailable", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("redis"), "{msg}");
    assert_eq!(n[0].api.get("/v1/me", Some(&ta)).await.status(), 503);
    let h: Value = n[0].api.get("/healthz", None).await.json().await.unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["state_error"]
            .as_str()
            .is_some_and(|e| e.contains("redis")),
        "{h}"
    );
    shared.redis.resume();
    let api = n[0].api.clone();
    eventually("service back", Duration::from_secs(15), || {
        let api = api.clone();
        async move { api.post_user("bob").await.status() == 201 }
    })
    .await;
    assert_eq!(n[0].api.get("/v1/me", Some(&ta)).await.status(), 200);
    let h: Value = n[0].api.get("/healthz", None).await.json().await.unwrap();
    assert_eq!(h["status"], "ok", "{h}");
    assert!(h.get("state_error").is_none(), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_pbx_refuses_a_second_node() {
    if !ready() {
        return;
    }
    let shared = Shared::start();
    let sip = |port: u16| format!("127.0.0.1:{port}");
    let (p1, p2) = (
        myturn_testkit::ports::free_udp_port(),
        myturn_testkit::ports::free_udp_port(),
    );
    let _first = Node::start(
        &shared,
        "b1",
        &["--pbx", "builtin", "--sip-listen", &sip(p1)],
    )
    .await;
    let mut second = Node::spawn(
        &shared,
        "b2",
        &["--pbx", "builtin", "--sip-listen", &sip(p2)],
    );
    let (code, log) = second.exits(Duration::from_secs(20));
    assert_ne!(code, Some(0), "the second node started:\n{log}");
    assert!(log.contains("--pbx kamailio"), "{log}");
    assert!(log.contains("b1"), "{log}");
    // Nor may a node with another PBX join the built-in one's state.
    let mut third = Node::spawn(&shared, "b3", &["--pbx", "none"]);
    let (code, log) = third.exits(Duration::from_secs(20));
    assert_ne!(code, Some(0), "the third node started:\n{log}");
    assert!(log.contains("--pbx kamailio"), "{log}");
}

/// The generated `myturn_sip.conf` in `dir` (empty when not written).
fn in_files(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("myturn_sip.conf")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asterisk_files_have_one_writer_and_the_lease_moves_when_it_dies() {
    if !ready() {
        return;
    }
    let shared = Shared::start();
    let (d1, d2) = (shared.dir.join("ast1"), shared.dir.join("ast2"));
    for d in [&d1, &d2] {
        std::fs::create_dir_all(d).unwrap();
    }
    let asterisk = |dir: &Path| {
        vec![
            "--pbx".to_owned(),
            "asterisk".to_owned(),
            "--reload".to_owned(),
            "none".to_owned(),
            "--asterisk-conf-dir".to_owned(),
            dir.display().to_string(),
        ]
    };
    let a1 = asterisk(&d1);
    let a2 = asterisk(&d2);
    let mut n1 = Node::start(
        &shared,
        "w1",
        &a1.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let n2 = Node::start(
        &shared,
        "w2",
        &a2.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    // A user registered through the second node: only the first writes.
    n2.register("alice").await;
    eventually("w1 writes alice", Duration::from_secs(5), || {
        let d1 = d1.clone();
        async move { in_files(&d1).contains("alice") }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!in_files(&d2).contains("alice"), "two writers");
    // The writer dies: within a node lifetime the lease moves, and the
    // second node writes everyone, a user registered meanwhile too.
    n1.kill();
    n2.register("bob").await;
    eventually("w2 takes over", Duration::from_secs(10), || {
        let d2 = d2.clone();
        async move {
            let f = in_files(&d2);
            f.contains("alice") && f.contains("bob")
        }
    })
    .await;
}
