//! baresip (Debian's `baresip-core`) registers to the built-in PBX and is
//! reachable by its extension: one of our agents calls it, baresip answers
//! automatically with L16, then we hang up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../myturn-sip/tests/peers/mod.rs"]
mod peers;

use std::process::Command;
use std::time::{Duration, Instant};

use myturn_pbx::core::{Account, Config, Pbx};
use myturn_pbx::driver::{self, PbxHandle};
use myturn_sip::digest::Algorithm;
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{EndedBy, Event};
use peers::*;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_and_answers_its_extension() {
    if !available("baresip") {
        return;
    }
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut cfg = Config::new(addr);
    // baresip 1.0 (libre) computes MD5 only, and gives up ("Function not
    // implemented") when any SHA-256 challenge is present, even after an
    // MD5 one: such agents need `--sip-digest md5`.
    cfg.algorithms = vec![Algorithm::Md5];
    let core = Pbx::new(cfg, Box::new(rand_core::OsRng), Instant::now());
    let accounts = vec![
        Account {
            username: "carol".into(),
            extension: "111002".into(),
            password: "Carol-pw-003".into(),
        },
        Account {
            username: "alice".into(),
            extension: "111000".into(),
            password: "Alice-pw-001".into(),
        },
    ];
    let (_acc_tx, acc_rx) = watch::channel(accounts);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let handle = PbxHandle::new(addr);
    driver::spawn(socket, core, handle.clone(), acc_rx, stop_rx);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // baresip's source: 2 s of a 440 Hz tone, PCM16 mono at 8 kHz.
    let tone = dir.path().join("tone.wav");
    std::fs::write(&tone, wav_tone(8000, 2)).unwrap();
    std::fs::write(
        dir.path().join("config"),
        format!(
            "sip_listen\t\t127.0.0.1:{port}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tl16.so\n\
             module\t\t\taufile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             audio_source\t\taufile,{}\n\
             audio_player\t\taufile,{}\n\
             audio_alert\t\taufile,/dev/null\n\
             rtp_ports\t\t20000-20100\n\
             net_interface\t\t127.0.0.1\n",
            tone.display(),
            dir.path().join("heard.wav").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("accounts"),
        format!(
            "<sip:carol@{addr}>;auth_pass=Carol-pw-003;regint=60;answermode=auto;audio_codecs=L16/8000/1\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("baresip");
    cmd.arg("-f").arg(dir.path()).args(["-t", "30", "-s"]);
    let baresip = Peer::spawn("baresip", &mut cmd);

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
    expect(&mut a, "Registered", |e| {
        matches!(e, Event::Registered { .. }).then_some(())
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
    expect(&mut a, "CallEnded", |e| {
        matches!(
            e,
            Event::CallEnded {
                by: EndedBy::Local,
                ..
            }
        )
        .then_some(())
    })
    .await;
    assert_eq!(handle.stats().calls_routed, 1);
    drop(baresip);
}

/// A mono PCM16 WAV file of a 440 Hz tone.
fn wav_tone(rate: u32, secs: u32) -> Vec<u8> {
    let n = rate * secs;
    let mut v = Vec::with_capacity(44 + 2 * n as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let t = i as f32 / rate as f32;
        let s = ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}
