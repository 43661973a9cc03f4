//! The store conformance suite (`tests/store_scenarios/`) on the Redis
//! store, against a real `redis-server` each test starts.

use std::sync::Arc;

use myturn_server::store::{RedisConfig, RedisStore, Store};
use myturn_testkit::redis::Redis;

use crate::store_scenarios::{rules, Build};

fn redis() -> Build {
    Box::new(|cfg, rec, pokes| {
        Box::pin(async move {
            let server = Arc::new(Redis::start());
            let rules = rules(cfg, 7);
            let jwt = rules.jwt.clone();
            let store = RedisStore::connect(
                RedisConfig::new(&server.url(), "n1"),
                rules,
                rec,
                pokes,
                Some(7),
            )
            .await
            .expect("the store connects");
            // The server lives as long as the store under test.
            let store: Arc<dyn Store> = Arc::new(Held(store, server));
            (store, jwt)
        })
    })
}

/// A store and the redis-server it runs on, dropped together (the server
/// is only held).
#[derive(Debug)]
struct Held(RedisStore, #[allow(dead_code)] Arc<Redis>);

impl Store for Held {
    fn execute(
        &self,
        command: myturn_server::core::Command,
        now: myturn_server::clock::At,
    ) -> myturn_server::store::Pending<'_> {
        self.0.execute(command, now)
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
}

mod suite {
    use super::*;
    use crate::store_scenarios;

    fn build() -> Option<Build> {
        myturn_testkit::skip::installed("redis-server").then(redis)
    }

    crate::store_suite!(build());
}

/// What only the Redis store can show: an authenticated request, which
/// counts as activity, moves the activity index and commits nothing (no
/// record's version moves, so it conflicts with no pairing); and a ready
/// user next to many waiting reads a few of their records, not all.
mod cost {
    use std::sync::Arc;

    use myturn_server::core::cases::{account, status};
    use myturn_server::core::{Listed, UserId};
    use myturn_server::store::{RedisConfig, RedisStore, Store};
    use myturn_testkit::redis::Redis;
    use myturn_wire::RequestedStatus;

    use crate::store_scenarios::{config, rules, Pokes, Recorder, World};

    async fn world() -> Option<(World, Redis, redis::Connection)> {
        if !myturn_testkit::skip::installed("redis-server") {
            return None;
        }
        let server = Redis::start();
        let store = RedisStore::connect(
            RedisConfig::new(&server.url(), "n1"),
            rules(config(), 7),
            Arc::new(Recorder::default()),
            Arc::new(Pokes::default()),
            Some(7),
        )
        .await
        .expect("the store connects");
        let (rec, pokes) = (Arc::new(Recorder::default()), Arc::new(Pokes::default()));
        let jwt = rules(config(), 7).jwt;
        let w = World {
            store: Arc::new(store) as Arc<dyn Store>,
            jwt,
            rec,
            pokes,
            t0: myturn_server::clock::At::new(std::time::Instant::now(), 1_800_000_000_000),
        };
        let conn = redis::Client::open(server.url())
            .and_then(|c| c.get_connection())
            .expect("a redis connection");
        Some((w, server, conn))
    }

    fn get(conn: &mut redis::Connection, key: &str) -> Option<String> {
        redis::cmd("GET").arg(key).query(conn).unwrap()
    }

    fn stat(conn: &mut redis::Connection, command: &str) -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_authenticated_request_commits_nothing() {
        let Some((w, _server, mut conn)) = world().await else {
            return;
        };
        let (a, ra) = w.register("alice", w.t0).await;
        let clock = get(&mut conn, "{mt}:clock");
        let version: Option<String> = redis::cmd("HGET")
            .arg("{mt}:ver")
            .arg(format!("{{mt}}:u:{a}"))
            .query(&mut conn)
            .unwrap();
        let evals = stat(&mut conn, "evalsha");
        let at = w.at(20);
        let claims = w.jwt.verify(&ra.token, at.unix()).unwrap();
        w.run(account::Authenticate { claims }, at).await.unwrap();
        assert_eq!(get(&mut conn, "{mt}:clock"), clock, "no commit");
        assert_eq!(stat(&mut conn, "evalsha"), evals, "no commit script ran");
        let after: Option<String> = redis::cmd("HGET")
            .arg("{mt}:ver")
            .arg(format!("{{mt}}:u:{a}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(after, version, "the record's version did not move");
        let seen: Option<u64> = redis::cmd("ZSCORE")
            .arg("{mt}:seen")
            .arg(a)
            .query(&mut conn)
            .unwrap();
        assert_eq!(seen, Some(at.unix_ms), "the activity index moved");
        // A request that changes something still commits.
        let ready = status::SetStatus::to(a, RequestedStatus::Ready);
        w.store.execute(ready.into(), at).await.unwrap();
        assert!(stat(&mut conn, "evalsha") > evals);
        let _ = <status::SetStatus as Listed>::output;
    }

    fn output_bytes(conn: &mut redis::Connection) -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(conn).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Users waiting in the pool, each on an interest of its own that it
    /// never falls back from: none can be paired with another.
    async fn wait_alone(w: &World, from: usize, to: usize) {
        for i in from..to {
            let (u, _) = w.register(&format!("waiter{i:04}"), w.t0).await;
            let own = format!("own{i}");
            w.ready_with(u, &[own.as_str()], true, w.t0).await;
        }
    }

    /// Bytes Redis sent for two plain users going ready (and paired)
    /// and busy again, as the load tool's cycle does.
    async fn cycle_bytes(w: &World, conn: &mut redis::Connection, x: UserId, y: UserId) -> u64 {
        let before = output_bytes(conn);
        w.ready_with(x, &[], false, w.t0).await;
        w.ready_with(y, &[], false, w.t0).await;
        assert!(w.peer(y, w.t0).await.is_some(), "paired");
        w.busy(x, w.t0).await;
        w.busy(y, w.t0).await;
        output_bytes(conn) - before
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_draw_costs_the_same_next_to_ten_or_five_hundred_waiting() {
        let Some((w, _server, mut conn)) = world().await else {
            return;
        };
        let (x, _) = w.register("seeker", w.t0).await;
        let (y, _) = w.register("other", w.t0).await;
        wait_alone(&w, 0, 10).await;
        let small = cycle_bytes(&w, &mut conn, x, y).await;
        wait_alone(&w, 10, 500).await;
        let large = cycle_bytes(&w, &mut conn, x, y).await;
        // Reading the pool's members would add ~5 KB per read here.
        assert!(
            large <= small + small / 4,
            "a cycle read {small} B next to 10 waiting and {large} B next to 500"
        );
    }
}
