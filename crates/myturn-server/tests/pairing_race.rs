//! Race-freedom: many concurrent `ready` and `peer` requests over real HTTP
//! must always leave a perfect matching.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::Live;
use serde_json::Value;

async fn serve() -> Live {
    let mut cfg = common::config();
    // 200 registrations from one address: the per-IP limit would refuse them.
    cfg.rate_limits = myturn_server::Switch::Off;
    common::live(&cfg).await
}

struct Client(Live);

impl Client {
    async fn register(&self, name: &str) -> String {
        common::token(&self.0.register(name).await)
    }
    async fn status(&self, token: &str, s: &str) -> Value {
        let r = self.0.status(token, s).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
    async fn peer(&self, token: &str, wait: u64) -> Option<Value> {
        let r = self
            .0
            .get(&format!("/v1/me/peer?wait={wait}"), Some(token))
            .await;
        match r.status().as_u16() {
            200 => Some(r.json().await.unwrap()),
            204 | 409 => None,
            s => panic!("unexpected {s}"),
        }
    }
    async fn admin(&self, path: &str) -> Value {
        self.0.admin_get(path).await
    }
}

/// Checks the server's pairs are a matching consistent with `seen` (what
/// each user was told), and returns (pairs, waiting users).
async fn check_matching(c: &Client, seen: &HashMap<String, Value>) -> (usize, usize) {
    let pairs = c.admin("/v1/admin/pairs").await["pairs"]
        .as_array()
        .unwrap()
        .clone();
    let mut partner: HashMap<String, (String, &'static str)> = HashMap::new();
    for p in &pairs {
        let (caller, callee) = (
            p["caller"].as_str().unwrap().to_owned(),
            p["callee"].as_str().unwrap().to_owned(),
        );
        assert_ne!(caller, callee);
        assert!(
            partner
                .insert(caller.clone(), (callee.clone(), "caller"))
                .is_none(),
            "{caller} in two pairs"
        );
        assert!(
            partner.insert(callee.clone(), (caller, "callee")).is_none(),
            "{callee} in two pairs"
        );
    }
    for (name, view) in seen {
        let (peer, role) = partner
            .get(name)
            .unwrap_or_else(|| panic!("{name} was told it is paired but is not"));
        assert_eq!(view["peer"]["name"].as_str().unwrap(), peer, "{name}");
        assert_eq!(view["role"].as_str().unwrap(), *role, "{name}");
    }
    let users = c.admin("/v1/admin/users").await["users"]
        .as_array()
        .unwrap()
        .clone();
    let waiting = users.iter().filter(|u| u["status"] == "ready").count();
    for u in &users {
        let name = u["name"].as_str().unwrap();
        let paired = matches!(
            u["status"].as_str().unwrap(),
            "paired" | "ready_to_talk" | "in_call"
        );
        assert_eq!(
            paired,
            partner.contains_key(name),
            "{name}: status {} vs pairs",
            u["status"]
        );
    }
    (pairs.len(), waiting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ready_and_peer_requests_make_a_perfect_matching() {
    const N: usize = 200;
    let c = std::sync::Arc::new(Client(serve().await));
    // Round 1: everyone registers, goes ready and asks for a peer, all at once.
    let mut tasks = Vec::new();
    for i in 0..N {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("user{i:03}");
            let t = c.register(&name).await;
            c.status(&t, "ready").await;
            // Poll concurrently with everyone else's ready requests.
            let _ = c.peer(&t, 0).await;
            let view = c.peer(&t, 5).await;
            (name, t, view)
        }));
    }
    let mut tokens = Vec::new();
    let mut seen = HashMap::new();
    for t in tasks {
        let (name, tok, view) = t.await.unwrap();
        tokens.push((name.clone(), tok));
        seen.insert(
            name,
            view.expect("with an even count everyone gets a partner"),
        );
    }
    // Both sides saw the same pair with opposite roles.
    for (name, view) in &seen {
        let peer = view["peer"]["name"].as_str().unwrap();
        let back = &seen[peer];
        assert_eq!(back["peer"]["name"].as_str().unwrap(), name);
        assert_ne!(back["role"], view["role"]);
    }
    assert_eq!(check_matching(&c, &seen).await, (N / 2, 0));

    // Round 2: everyone asks for the next partner at once, while everyone
    // also polls. Pairs dissolve and re-form concurrently.
    let mut tasks = Vec::new();
    for (name, tok) in tokens.clone() {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.status(&tok, "ready").await;
            (name, c.peer(&tok, 0).await)
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, waiting) = check_matching(&c, &HashMap::new()).await;
    assert!(
        waiting <= 1,
        "{waiting} users left waiting while others wait too"
    );

    // Round 3: whoever was sent back to busy goes ready again.
    let mut tasks = Vec::new();
    for (name, tok) in tokens {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let me = c.0.get_json("/v1/me", &tok).await;
            if me["status"] == "busy" {
                c.status(&tok, "ready").await;
            }
            (name, c.peer(&tok, 5).await)
        }));
    }
    let mut seen = HashMap::new();
    for t in tasks {
        let (name, view) = t.await.unwrap();
        if let Some(v) = view {
            seen.insert(name, v);
        }
    }
    // Round 3 only adds pairs, so what each user was told still holds.
    let (pairs, waiting) = check_matching(&c, &seen).await;
    assert_eq!(
        (pairs, waiting),
        (N / 2, 0),
        "everyone is paired in the end"
    );
    assert_eq!(seen.len(), N);
}
