//! The store conformance suite (`tests/store_scenarios/`) on the in-memory
//! store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_scenarios;

use std::sync::Arc;

use myturn_server::core::Core;
use myturn_server::store::MemoryStore;
use store_scenarios::Build;

fn memory() -> Build {
    Box::new(|cfg, rec, pokes| {
        Box::pin(async move {
            let core = Core::new(cfg, Some(7));
            let jwt = core.signer();
            let store: Arc<dyn myturn_server::store::Store> =
                Arc::new(MemoryStore::new(core, rec, pokes));
            (store, jwt)
        })
    })
}

store_suite!(Some(memory()));
