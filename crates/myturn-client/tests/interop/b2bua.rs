//! Interop through a back-to-back-agent-like path (issue #11): two real
//! `myturn --plain` clients, paired by a real myturn-server (no built-in
//! PBX), register to and call each other through Kamailio (Debian's
//! `kamailio`) with
//!
//! * the `topoh` module masking the Call-ID (`mask_callid=1`): the callee
//!   sees a different Call-ID from the one the caller sent, as behind a
//!   B2BUA; and
//! * the `rtpengine` module in front of a real rtpengine (Debian's
//!   `rtpengine-daemon`, userspace forwarding): every SDP is rewritten so
//!   that the media of the call is anchored in rtpengine.
//!
//! The test starts rtpengine and Kamailio itself, on loopback and free
//! ports, and checks: the same SAS on both sides, chat both ways, each
//! side's output WAV bit-exact to the other side's input, rtpengine really
//! relayed the call's media both ways (its ng `query`), and topoh really
//! gave the two sides different Call-IDs (the clients' `call connected`
//! log lines).
//!
//! `.ci/run` installs the peers. When one is missing the test fails under
//! CI (`CI` set) or with `MYTURN_REQUIRE_INTEROP=1`, and is skipped with a
//! `SKIPPED` notice otherwise.

use crate::common::{self, write_wav, Proc};

use std::net::SocketAddr;
use std::path::Path;

use crate::ng::Ng;
use myturn_client::speech;
use myturn_testkit::kamailio::{self, Kamailio, Script};
use myturn_testkit::rtpengine;
use myturn_testkit::{skip, Scratch};

use tokio::process::Command;

/// topoh's `mask_callid`: 1 makes Kamailio hand the callee a Call-ID of
/// its own (`!!:` + the encoded original).
const MASK_CALLID: u8 = 1;
/// Audio each side sends: 2 s, 100 frames of 20 ms.
const FRAMES: usize = 100;

/// Tells Kamailio which user name an extension belongs to.
async fn provision(ctl: &Path, extension: &str, name: &str) {
    let out = Command::new("kamcmd")
        .arg("-s")
        .arg(format!("unix:{}", ctl.display()))
        // `s:`: a string, though it looks like a number.
        .args(["htable.sets", "ext", &format!("s:{extension}"), name])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "kamcmd htable.sets: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops ANSI escape sequences (in case the log is coloured anyway).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            if it.peek() == Some(&'[') {
                it.next();
                for c in it.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The field `name` of the client's `call connected` log line.
fn logged(log: &[String], name: &str) -> Option<String> {
    let key = format!(" {name}=");
    log.iter().map(|l| strip_ansi(l)).find_map(|l| {
        if !l.contains("call connected") {
            return None;
        }
        let rest = &l[l.find(&key)? + key.len()..];
        Some(match rest.strip_prefix('"') {
            // Debug-formatted: a quoted string with escapes.
            Some(q) => {
                let mut v = String::new();
                let mut chars = q.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => v.extend(chars.next()),
                        '"' => break,
                        c => v.push(c),
                    }
                }
                v
            }
            None => rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        })
    })
}

// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_talk_through_kamailio_topoh_and_rtpengine() {
    through_kamailio("pcm16").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_talk_opus_through_kamailio_topoh_and_rtpengine() {
    through_kamailio("opus").await;
}

async fn through_kamailio(codec: &str) {
    if !skip::all_installed(&["kamailio", "kamcmd", "rtpengine"]) {
        return;
    }
    let Some(modules) = kamailio::modules(&["topoh.so", "rtpengine.so"]) else {
        return;
    };
    let dir = Scratch::new();

    // rtpengine first: Kamailio's module pings it when starting, and
    // would leave a dead one disabled for a minute.
    let (mut rtpengine, ng_port, media_ports) =
        rtpengine::start(dir.path(), "127.0.0.1".parse().unwrap());
    let mut ng = Ng::new(ng_port).await;
    ng.wait_ready(&mut rtpengine).await;
    let ctl = dir.join("kamailio_ctl");
    let k = Kamailio::new(dir.path(), Script::TopohRtpengine, &modules)
        .set("ctl", ctl.display())
        .set("mask_callid", MASK_CALLID)
        .set("ng", ng_port);
    let sip_port = k.port();
    let mut kamailio = k.start();

    // The pairing server, without a PBX of its own: clients register to
    // Kamailio.
    let mut cfg = myturn_server::Config::defaults();
    cfg.pbx = myturn_server::pbx::PbxKind::None;
    cfg.sip_domain = Some(format!("127.0.0.1:{sip_port}"));
    let server = common::serve(&cfg).await;

    let (a_in, b_in) = (dir.path().join("alice.wav"), dir.path().join("bob.wav"));
    let (a_out, b_out) = (
        dir.path().join("alice-heard.wav"),
        dir.path().join("bob-heard.wav"),
    );
    let (a_frames, b_frames) = (speech::frames(21, 8000, 2.0), speech::frames(22, 8000, 2.0));
    assert_eq!(a_frames.len(), FRAMES);
    write_wav(&a_in, &a_frames);
    write_wav(&b_in, &b_frames);

    let flags = ["--codec", codec];
    let mut alice = Proc::start_in(None, &server, "alice", &a_in, &a_out, &flags);
    let mut bob = Proc::start_in(None, &server, "bob", &b_in, &b_out, &flags);
    for p in [&mut alice, &mut bob] {
        let l = p.expect("registered name=").await;
        let extension = l.split_once(" extension=").expect("an extension").1;
        provision(&ctl, extension, p.name).await;
        p.expect("sip registered").await;
    }
    assert!(
        ng.list().await.is_empty(),
        "no media session before the call"
    );
    let (pa, pb) = common::paired(&mut alice, &mut bob).await;
    assert!(
        pa.contains("peer=bob") && pb.contains("peer=alice"),
        "{pa} / {pb}"
    );
    let alice_calls = pa.contains("role=caller");
    assert!(
        alice_calls != pb.contains("role=caller"),
        "one caller: {pa} / {pb}"
    );
    let (ca, cb) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(ca, cb, "both sides show the same SAS");

    alice.send("say hello from alice").await;
    bob.send("say hi from bob").await;
    assert_eq!(bob.expect("chat ").await, "chat alice: hello from alice");
    assert_eq!(alice.expect("chat ").await, "chat bob: hi from bob");

    // All 2 s of audio went through, both ways, nothing dropped.
    for p in [&mut alice, &mut bob] {
        let stats = p.all_audio_through(FRAMES).await;
        assert!(stats.contains(&format!(" codec={codec} ")), "{stats}");
        assert!(
            stats.contains("loss=0.0%") && stats.contains(" dropped=0"),
            "{}: {stats}",
            p.name
        );
    }

    // The media was anchored in rtpengine: one call, and from each party
    // (SIP tag) it received, and relayed, at least all the audio frames.
    let calls = ng.list().await;
    assert_eq!(calls.len(), 1, "one call in rtpengine: {calls:?}");
    let rtp_call_id = calls[0].clone();
    let by_tag = ng.rtp_received_by_tag(&rtp_call_id).await;
    eprintln!("rtpengine call {rtp_call_id}: RTP packets received per tag {by_tag:?}");
    assert_eq!(by_tag.len(), 2, "two parties: {by_tag:?}");
    // Opus's DTX sends nothing for the pauses.
    let least = if codec == "pcm16" { FRAMES } else { FRAMES / 2 };
    for (tag, packets) in &by_tag {
        assert!(
            *packets >= least as i64,
            "rtpengine relayed only {packets} packets from {tag}"
        );
    }
    kamailio.assert_running();
    rtpengine.assert_running();

    common::hang_up_and_quit(&mut alice, &mut bob).await;

    // Each output WAV holds what the other side sent, as PCM16 at 8 kHz:
    // every speech frame bit-exact and in order with PCM16, alike once
    // decoded with Opus.
    for (heard, sent) in [(&b_out, &a_frames), (&a_out, &b_frames)] {
        let min = if codec == "pcm16" { 1.0 } else { 0.8 };
        common::heard::assert_heard(heard, sent, 8000, codec, min);
    }

    // topoh masked the Call-ID: the two sides knew the call by different
    // Call-IDs; the caller's is the one Kamailio (unmasking on the way
    // back) gave rtpengine.
    let (a_log, b_log) = (alice.finish_log().await, bob.finish_log().await);
    let a_id =
        logged(&a_log, "sip_call_id").expect("alice logs `call connected` with sip_call_id=");
    let b_id = logged(&b_log, "sip_call_id").expect("bob logs `call connected` with sip_call_id=");
    let (caller_id, callee_id) = if alice_calls {
        (a_id, b_id)
    } else {
        (b_id, a_id)
    };
    assert_ne!(
        caller_id, callee_id,
        "topoh gave the callee a Call-ID of its own"
    );
    assert_eq!(
        caller_id, rtp_call_id,
        "rtpengine knows the call by the caller's Call-ID"
    );
    // And where each side sent its media, as its SDP said (when the log
    // line names it): one of rtpengine's ports.
    for (name, log) in [("alice", &a_log), ("bob", &b_log)] {
        if let Some(m) = logged(log, "remote_media") {
            let m: SocketAddr = m.parse().unwrap();
            assert!(
                media_ports.contains(&m.port()),
                "{name} sent media to {m}, not to rtpengine ({media_ports:?})"
            );
        }
    }
    drop(kamailio);
    drop(rtpengine);
}
