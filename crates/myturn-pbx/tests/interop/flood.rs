//! The flood test: a flood from one loopback address (garbage and
//! unauthenticated REGISTER, INVITE and OPTIONS, at a fixed offered rate),
//! SIPp's digest REGISTERs from another at a fixed rate, and a trusted
//! monitor from a third sending OPTIONS faster than the per-source limit.
//! Every legit REGISTER succeeds, the flooder stops getting answers within
//! 2 s (and is listed as blocked for flooding), and the monitor is answered
//! throughout. Rates and ratios are the benchmark's (`benches/pbx.rs`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::common::flood::{flood, Mix};
use crate::common::{account, pbx_configured};
use myturn_pbx::core::{BlockReason, Limit, Net};
use myturn_sip::digest::Algorithm;
use myturn_testkit::sipp::{self, Scenario, Sipp};
use myturn_testkit::{skip, Scratch};

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const LEGIT: &str = "127.0.0.2";
const MONITOR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_source_flood_is_cut_off_while_legit_and_trusted_sources_go_on() {
    if !skip::installed("sipp") {
        return;
    }
    let p = pbx_configured(vec![account("legit", "111000", "Legit-pw-0001")], |c| {
        c.algorithms = vec![Algorithm::Md5];
        c.flood.requests = Limit::new(200, 400);
        c.flood.trusted = vec![Net::new(MONITOR, 32)];
    })
    .await;
    let pbx = p.addr;
    let secs = 5;
    let flooder = std::thread::spawn(move || {
        flood(
            FLOODER,
            pbx,
            Mix::Attack,
            30_000,
            Duration::from_secs(secs),
            Duration::from_millis(500),
        )
    });
    let monitor = std::thread::spawn(move || {
        // 300/s, over the 200/s every other source is held to.
        flood(
            MONITOR,
            pbx,
            Mix::Options,
            300,
            Duration::from_secs(secs),
            Duration::from_millis(500),
        )
    });
    // 50 REGISTER+auth a second (100 requests/s) for the flood's length.
    let dir = Scratch::new();
    let calls = 50 * secs;
    let legit = Sipp::new(dir.path(), Scenario::Register)
        .remote(pbx)
        .key("user", "legit")
        .key("expires", 300)
        .flag("keep")
        .auth("legit", "Legit-pw-0001")
        .args(["-i", LEGIT, "-r", "50", "-m", &calls.to_string()])
        .args([
            "-timeout",
            "30s",
            "-timeout_error",
            "-trace_stat",
            "-trace_err",
        ])
        .spawn();
    let (code, out) = tokio::task::spawn_blocking(move || legit.wait(Duration::from_secs(60)))
        .await
        .unwrap();
    let f = tokio::task::spawn_blocking(move || flooder.join().unwrap())
        .await
        .unwrap();
    let m = tokio::task::spawn_blocking(move || monitor.join().unwrap())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "SIPp: {out}");
    let (ok, failed) = sipp::take_call_counts(dir.path(), Scenario::Register);
    assert_eq!((ok, failed), (calls, 0), "every legit REGISTER succeeds");
    // The flooder: a few answers at first, none after 2 s.
    assert!(f.sent > 100_000, "the flood ran: {}", f.sent);
    assert_eq!(
        f.answers_after(Duration::from_secs(2)),
        0,
        "answers to the flooder after 2 s (of {} in all)",
        f.answers.len()
    );
    let blocked = p.handle.blocked_sources();
    let b = blocked
        .iter()
        .find(|b| b.ip == FLOODER)
        .expect("the flooder is listed");
    assert_eq!(b.reason, BlockReason::Flood.as_str());
    assert!(b.packets > 0, "{b:?}");
    let st = p.handle.stats();
    assert!(st.blocked_packets > 50_000, "{st:?}");
    assert!(st.blocked_bytes > st.blocked_packets, "{st:?}");
    // The trusted monitor: never blocked, answered to the end.
    assert!(blocked.iter().all(|b| b.ip == FLOODER), "{blocked:?}");
    let last = f.lasted.saturating_sub(Duration::from_secs(1));
    assert!(
        m.answers_after(last) > 100,
        "monitor answers in the last second: {}",
        m.answers_after(last)
    );
    assert!(
        m.answers.len() as u64 * 10 >= m.sent * 9,
        "monitor answered {} of {}",
        m.answers.len(),
        m.sent
    );
}
