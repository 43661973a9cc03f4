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
