//! The real-peer tests of myturn-pbx, one test target (`interop`): SIPp
//! and baresip against the built-in PBX on real UDP (SIPp also under a
//! flood from another loopback address), started by the tests
//! through myturn-testkit. `.ci/run` installs the peers; when one is
//! missing a test prints SKIPPED, or fails under CI (`CI` set) or with
//! `MYTURN_REQUIRE_INTEROP=1`.
//!
//! Run them alone with `cargo test -p myturn-pbx --test interop`; the
//! pure tests alone with `cargo pure`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod baresip;
mod flood;
mod sipp;
