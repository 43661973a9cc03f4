//! The perfect-matching race, over one node or several sharing a state:
//! many concurrent `ready` and `peer` requests over real HTTP must always
//! leave a perfect matching, consistent with what each user was told.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::Api;

/// One user's way in: a node's API.
pub struct Client(pub Api);

impl Client {
    async fn register(&self, name: &str) -> String {
        super::token(&self.0.register(name).await)
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
pub async fn check_matching(c: &Client, seen: &HashMap<String, Value>) -> (usize, usize) {
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

/// `N` users (even), each through one of `nodes` in turn: everyone
/// registers, goes ready and asks for a peer at once; then everyone asks
/// for the next partner at once; then whoever was sent back goes ready
/// again. After each round, the pairs are a perfect matching that agrees
/// with what every user was told.
pub async fn perfect_matching_race(nodes: &[Api], n: usize) {
    assert!(!nodes.is_empty() && n % 2 == 0);
    let clients: Vec<Arc<Client>> = nodes.iter().cloned().map(|a| Arc::new(Client(a))).collect();
    let c = clients[0].clone();
    let via = |i: usize| clients[i % clients.len()].clone();
    // Round 1: everyone registers, goes ready and asks for a peer, all at once.
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = via(i);
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
    assert_eq!(check_matching(&c, &seen).await, (n / 2, 0));

    // Round 2: everyone asks for the next partner at once, while everyone
    // also polls. Pairs dissolve and re-form concurrently.
    let mut tasks = Vec::new();
    for (i, (name, tok)) in tokens.clone().into_iter().enumerate() {
        let c = via(i + 1);
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
    for (i, (name, tok)) in tokens.into_iter().enumerate() {
        let c = via(i + 2);
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
        (n / 2, 0),
        "everyone is paired in the end"
    );
    assert_eq!(seen.len(), n);
}
