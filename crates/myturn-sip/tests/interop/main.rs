//! The real-peer tests of myturn-sip, one test target (`interop`): SIPp
//! and Kamailio, started by the tests through myturn-testkit. `.ci/run`
//! installs the peers; when one is missing a test prints SKIPPED, or fails
//! under CI (`CI` set) or with `MYTURN_REQUIRE_INTEROP=1`.
//!
//! Run them alone with `cargo test -p myturn-sip --test interop`; the
//! pure tests alone with `cargo pure`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kamailio;
mod sipp;
