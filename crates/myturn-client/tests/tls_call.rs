//! A whole call with the API over HTTPS, the event stream over WSS and SIP
//! over TLS through the built-in PBX (issue #14): the server's certificate
//! comes from a private CA made by the test with the `openssl` command
//! line, and the clients trust it with `--ca-cert`; the server's SIP domain
//! says `transport=tls`, and nothing else tells the clients to use it. Checked: the same SAS, chat both ways, every audio frame
//! bit-exact; and a client without `--ca-cert` is told, clearly, why it
//! cannot connect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{builtin_pbx, private_ca, serve_on, voice, Proc};
use myturn_testkit::http::get_json;
use myturn_testkit::Scratch;

const ADMIN: &str = "admin-token-for-the-tls-call-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_call_over_https_wss_and_sip_over_tls() {
    let dir = Scratch::new();
    let (ca, cert, key) = private_ca(dir.path());
    let mut cfg = builtin_pbx();
    cfg.tls_cert = Some(cert);
    cfg.tls_key = Some(key);
    cfg.admin_token = Some(ADMIN.into());
    let port = serve_on(&cfg, [127, 0, 0, 1].into()).await.port();
    let server = format!("https://localhost:{port}");

    let (a_in, a_frames) = voice(dir.path(), "alice", 41, 2.0);
    let (b_in, b_frames) = voice(dir.path(), "bob", 42, 2.0);
    let (a_out, b_out) = (dir.join("alice-heard.wav"), dir.join("bob-heard.wav"));
    // Alice offers PCM16 only, Bob Opus too: they agree on PCM16.
    let flags = ["--ca-cert", ca.to_str().unwrap()];
    let pcm16 = ["--ca-cert", ca.to_str().unwrap(), "--codec", "pcm16"];
    let mut alice = Proc::start_in(None, &server, "alice", &a_in, &a_out, &pcm16);
    let mut bob = Proc::start_in(None, &server, "bob", &b_in, &b_out, &flags);
    common::fully_registered([&mut alice, &mut bob]).await;
    // SIP went over TLS too (the server's SIP domain said
    // `transport=tls`): the PBX's bindings are TLS contacts.
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let mut text = String::new();
    for _ in 0..30 {
        // The PBX's view of its bindings is refreshed every 100 ms.
        let conf = get_json(&https, &format!("{server}/v1/admin/sip-conf"), ADMIN).await;
        text = conf["files"][0]["content"].as_str().unwrap().to_owned();
        if text.matches(";transport=tls").count() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(text.matches(";transport=tls").count(), 2, "{text}");
    // `paired` arrives over the WSS event stream.
    let (pa, pb) = common::paired(&mut alice, &mut bob).await;
    assert!(
        pa.contains("peer=bob") && pb.contains("peer=alice"),
        "{pa} / {pb}"
    );
    let (sa, sb) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(sa, sb);
    common::chat(&mut alice, &mut bob, "over https").await;
    common::chat(&mut bob, &mut alice, "and wss").await;
    let n = a_frames.len();
    let (sa, sb) = tokio::join!(alice.all_audio_through(n), bob.all_audio_through(n));
    assert!(
        sa.contains(" codec=pcm16 ") && sb.contains(" codec=pcm16 "),
        "{sa} / {sb}"
    );
    common::hang_up_and_quit(&mut alice, &mut bob).await;
    let log = alice.finish_log().await;
    assert!(log.iter().any(|l| l.contains("SIP over TLS")), "{log:?}");
    for (heard, sent) in [(&b_out, &a_frames), (&a_out, &b_frames)] {
        common::heard::assert_heard(heard, sent, 8000, "pcm16", 1.0);
    }

    // Without the CA: a clear refusal that says what to do.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_myturn"))
        .args(["--plain", "--name", "carol", "--server", &server])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS certificate was refused")
            && err.contains("does not trust")
            && err.contains("--ca-cert"),
        "{err}"
    );
}
