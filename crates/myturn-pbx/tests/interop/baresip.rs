//! baresip (Debian's `baresip-core`) registers to the built-in PBX and is
//! reachable by its extension: one of our agents calls it, baresip answers
//! automatically with L16, then we hang up.

use std::time::{Duration, Instant};

use crate::common::{account, pbx_with};
use myturn_sip::digest::Algorithm;
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{EndedBy, Event};
use myturn_testkit::sip::{agent, ended, seen};
use myturn_testkit::{baresip, ports, skip, Scratch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_and_answers_its_extension() {
    if !skip::installed("baresip") {
        return;
    }
    // baresip 1.0 (libre) computes MD5 only, and gives up ("Function not
    // implemented") when any SHA-256 challenge is present, even after an
    // MD5 one: such agents need `--sip-digest md5`.
    let p = pbx_with(
        vec![Algorithm::Md5],
        vec![
            account("carol", "111002", "Carol-pw-003"),
            account("alice", "111000", "Alice-pw-001"),
        ],
    )
    .await;
    let (addr, handle) = (p.addr, &p.handle);
    let dir = Scratch::new();
    let baresip = baresip::start(
        dir.path(),
        ports::free_udp_tcp_port(),
        &format!(
            "<sip:carol@{addr}>;auth_pass=Carol-pw-003;regint=60;answermode=auto;audio_codecs=L16/8000/1"
        ),
    );

    let t0 = Instant::now();
    while !handle.bindings().iter().any(|(u, _, _)| u == "carol") {
        if t0.elapsed() > Duration::from_secs(10) {
            let (_, out) = baresip.wait(Duration::from_secs(1));
            panic!("baresip never registered: {:?}\n{out}", handle.stats());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut a = agent("alice", "Alice-pw-001", addr).await;
    a.register().await.unwrap();
    seen(&mut a, "Registered", |e| {
        matches!(e, Event::Registered { .. })
    })
    .await;
    let offer = Sdp::new("127.0.0.1:4010".parse().unwrap(), 8000, None, 1).render();
    let call = a.invite("111002", &offer).await.unwrap();
    let mut other = Vec::new();
    let answered = a
        .wait_for(Duration::from_secs(10), &mut other, |e| match e {
            Event::Answered { answer, .. } => Some(Ok(answer.clone())),
            Event::CallFailed { code, reason, .. } => Some(Err((*code, reason.clone()))),
            _ => None,
        })
        .await;
    let answer = match answered {
        Some(Ok(a)) => a,
        other_result => {
            let (_, out) = baresip.wait(Duration::from_secs(1));
            panic!("baresip did not answer: {other_result:?} {other:?}\n{out}");
        }
    };
    let answer = answer.expect("baresip answered with SDP");
    assert_eq!(
        (answer.payload_type, answer.rate),
        (96, 8000),
        "L16/8000 kept"
    );
    assert!(answer.media.port() >= 20000 && answer.media.port() <= 20100);
    a.hangup(call).await.unwrap();
    ended(&mut a, "CallEnded", EndedBy::Local).await;
    assert_eq!(handle.stats().calls_routed, 1);
    drop(baresip);
}
