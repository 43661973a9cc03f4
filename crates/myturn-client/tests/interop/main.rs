//! The real-peer tests of myturn-client, one test target (`interop`):
//! Kamailio with topoh and rtpengine, two Kamailio nodes on one Redis
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

mod b2bua;
mod kamailio_cluster;
mod netns_liveness;
mod netns_nat;
mod netns_quality;
mod ng;
mod nginx;
