//! The real-peer tests of myturn-client, one test target (`interop`):
//! the browser client in Debian's chromium, Kamailio with topoh and rtpengine, two Kamailio nodes on one Redis
//! (`--pbx kamailio`), nginx, and clients in network
//! namespaces (a vanishing network, homes behind NAT routers), started by
//! the tests through myturn-testkit. `.ci/run` installs the peers; when one
//! is missing (or namespaces cannot be made: they need root) a test prints
//! SKIPPED, or fails under CI (`CI` set) or with `MYTURN_REQUIRE_INTEROP=1`.
//!
//! Run them alone with `cargo test -p myturn-client --test interop`; the
//! pure tests alone with `cargo pure`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

#[path = "../../../myturn-server/tests/interop/devtools.rs"]
#[allow(dead_code)] // the server's browser tests use all of it
mod devtools;

mod b2bua;
mod browser;
mod kamailio_cluster;
mod netns_liveness;
mod netns_nat;
mod netns_quality;
mod ng;
mod nginx;
