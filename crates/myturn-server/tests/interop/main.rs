//! The real-peer tests of myturn-server, one test target (`interop`): the
//! store conformance suite on a real `redis-server`, the
//! web admin console and the API page in a real browser (Debian's `chromium`), HTTPS
//! checked with the tools an operator would use (`curl`, `openssl
//! s_client`), and `--pbx kamailio` with `redis-server`, Kamailio nodes on
//! the shipped config and rtpengine, started by the tests through myturn-testkit. `.ci/run`
//! installs the peers; when one is missing a test prints SKIPPED, or fails
//! under CI (`CI` set) or with `MYTURN_REQUIRE_INTEROP=1`.
//!
//! Run them alone with `cargo test -p myturn-server --test interop`; the
//! pure tests alone with `cargo pure`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

#[path = "../store_scenarios/mod.rs"]
mod store_scenarios;

mod console;
mod devtools;
mod docs_page;
mod https;
mod kamailio_accounts;
mod nodes;
mod store_redis;
