//! Race-freedom: many concurrent `ready` and `peer` requests over real HTTP
//! must always leave a perfect matching (`common::race`, which the
//! several-node version shares).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ready_and_peer_requests_make_a_perfect_matching() {
    let mut cfg = common::config();
    // 200 registrations from one address: the per-IP limit would refuse them.
    cfg.rate_limits = myturn_server::Switch::Off;
    let live = common::live(&cfg).await;
    common::race::perfect_matching_race(std::slice::from_ref(&live.api), 200).await;
}
