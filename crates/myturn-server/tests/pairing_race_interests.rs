//! The perfect matching with interests, over real HTTP: 200 users at once,
//! each with 0–3 interests drawn from 20 (some never falling back). In
//! the end nobody is in two pairs, every pair was told exactly what the
//! two share, and no two users still waiting could be paired: everyone
//! ends paired, or alone for a reason (only their interests, and nobody
//! shares one).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

const N: usize = 200;
const TAGS: usize = 20;

/// What one user asked for.
#[derive(Debug, Clone)]
struct Asked {
    tags: BTreeSet<String>,
    only: bool,
}

impl Asked {
    /// In the plain draw once its wait ran out.
    fn plain(&self) -> bool {
        self.tags.is_empty() || !self.only
    }

    /// Whether the two could be paired (after every wait ran out).
    fn compatible(&self, other: &Asked) -> bool {
        !self.tags.is_disjoint(&other.tags) || (self.plain() && other.plain())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_users_with_interests_end_in_a_perfect_matching() {
    let mut cfg = common::config();
    cfg.rate_limits = myturn_server::Switch::Off;
    cfg.interest_wait = 1;
    let server = common::live(&cfg).await;

    let mut rng = StdRng::seed_from_u64(23);
    let asked: Vec<Asked> = (0..N)
        .map(|_| {
            let n = rng.gen_range(0..=3);
            Asked {
                tags: (0..n)
                    .map(|_| format!("topic {}", rng.gen_range(0..TAGS)))
                    .collect(),
                only: rng.gen_bool(0.1),
            }
        })
        .collect();
    let asked = Arc::new(asked);
    let mut tasks = Vec::new();
    for i in 0..N {
        let (api, asked) = (server.api.clone(), asked.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("user{i:03}");
            let tok = api.register(&name).await["token"]
                .as_str()
                .unwrap()
                .to_owned();
            let me = &asked[i];
            let body = json!({
                "status": "ready",
                "interests": me.tags.iter().collect::<Vec<_>>(),
                "only_interests": me.only && !me.tags.is_empty(),
            });
            let r = api
                .call(Method::PUT, "/v1/me/status", Some(&tok), Some(body))
                .await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            // Long enough for every fallback (1 s) and a sweep after it.
            let r = api.get("/v1/me/peer?wait=4", Some(&tok)).await;
            let view = match r.status().as_u16() {
                200 => Some(r.json::<Value>().await.unwrap()),
                204 => None,
                s => panic!("{name}: unexpected {s}"),
            };
            (name, view)
        }));
    }
    let mut told: HashMap<String, Value> = HashMap::new();
    for t in tasks {
        let (name, view) = t.await.unwrap();
        if let Some(v) = view {
            told.insert(name, v);
        }
    }
    let index = |name: &str| name.trim_start_matches("user").parse::<usize>().unwrap();

    // What each was told: a partner who was told about them, and exactly
    // the interests the two share.
    for (name, view) in &told {
        let peer = view["peer"]["name"].as_str().unwrap();
        let back = told
            .get(peer)
            .unwrap_or_else(|| panic!("{name} paired with {peer}, who never heard"));
        assert_eq!(back["peer"]["name"].as_str().unwrap(), name);
        let (a, b) = (&asked[index(name)], &asked[index(peer)]);
        let shared: BTreeSet<String> = a.tags.intersection(&b.tags).cloned().collect();
        // Absent when they share none.
        let said: BTreeSet<String> = view["shared_interests"]
            .as_array()
            .map(|v| v.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        assert_eq!(said, shared, "{name} and {peer}");
        assert!(a.compatible(b), "{name} and {peer} could not be paired");
    }

    // The server's own view: a matching, and nobody left waiting beside a
    // compatible partner.
    let pairs = server.admin_get("/v1/admin/pairs").await["pairs"]
        .as_array()
        .unwrap()
        .clone();
    let mut in_pair = BTreeSet::new();
    for p in &pairs {
        for side in ["caller", "callee"] {
            let n = p[side].as_str().unwrap().to_owned();
            assert!(in_pair.insert(n.clone()), "{n} in two pairs");
        }
    }
    assert_eq!(in_pair.len(), told.len(), "pairs and what users were told");
    let users = server.admin_get("/v1/admin/users").await["users"]
        .as_array()
        .unwrap()
        .clone();
    let waiting: Vec<usize> = users
        .iter()
        .filter(|u| u["status"] == "ready")
        .map(|u| index(u["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        waiting.len() + in_pair.len(),
        N,
        "everyone paired or waiting"
    );
    eprintln!("{} pairs, {} alone", pairs.len(), waiting.len());
    for (k, &a) in waiting.iter().enumerate() {
        // The reason to be alone: only interests that nobody shares.
        assert!(
            !asked[a].plain() || waiting.iter().filter(|&&b| asked[b].plain()).count() <= 1,
            "user{a:03} waits in the plain draw beside another"
        );
        for &b in &waiting[k + 1..] {
            assert!(
                !asked[a].compatible(&asked[b]),
                "user{a:03} {:?} and user{b:03} {:?} both wait",
                asked[a],
                asked[b]
            );
        }
    }
    // The kinds add up.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let m = server.metrics().await;
    let kind = |k: &str| {
        let key = format!("myturn_pairings_by_kind_total{{kind=\"{k}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    let (shared, fallback, plain) = (kind("shared"), kind("fallback"), kind("plain"));
    eprintln!("kinds: {shared} shared, {fallback} fallback, {plain} plain");
    assert_eq!(shared + fallback + plain, pairs.len());
    assert!(shared > 0 && fallback + plain > 0, "both draws were used");
}
