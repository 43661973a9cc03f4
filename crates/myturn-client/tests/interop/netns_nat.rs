//! Calls across the internet (issue #13): two clients, each behind its own
//! home router doing NAT, call each other through the server on a
//! "public" address. The test builds the network itself from namespaces
//! (myturn-testkit's `netns`): this namespace is the internet and holds the
//! server; each home is a router namespace (nftables masquerade, only
//! replies let back in) and a client namespace with the same private
//! address, 10.0.0.2, in both homes.
//!
//! The clients get **no network flags**. Checked, once with a symmetric
//! NAT (`masquerade random,fully-random`) and once with a port-preserving
//! one, through the built-in relay, and once through a real rtpengine:
//! the same SAS on both sides, chat both ways, at least 99% of the audio
//! frames bit-exact in each direction, the media really through the relay
//! (its counters), and every relay port free again after the call.
//!
//! Needs root; prints SKIPPED without it, and fails under CI.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::common::{self, builtin_pbx, serve_on, voice, Proc};
use myturn_server::config::{MediaRelay, NgAddr};
use myturn_testkit::netns::{Homes, Nat};
use myturn_testkit::process::Peer;
use myturn_testkit::{rtpengine, Scratch};
use myturn_wire::AdminMedia;

const ADMIN: &str = "admin-token-for-the-nat-tests-0123456789";
/// Seconds of speech each side sends.
const SECONDS: f32 = 3.0;

struct Server {
    url: String,
    http: reqwest::Client,
}

impl Server {
    /// The pairing server and built-in PBX on `public`, media as `relay`.
    async fn start(public: IpAddr, relay: MediaRelay, ng: Option<SocketAddr>) -> Server {
        let mut cfg = builtin_pbx();
        cfg.sip_listen = SocketAddr::new(public, 0);
        cfg.admin_token = Some(ADMIN.into());
        cfg.media_relay = relay;
        cfg.rtpengine = ng.map(NgAddr);
        Server {
            url: format!("http://{}", serve_on(&cfg, public).await),
            http: reqwest::Client::new(),
        }
    }

    async fn admin(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn media(&self) -> AdminMedia {
        serde_json::from_str(&self.admin("/v1/admin/media").await).unwrap()
    }
}

/// Alice (home 0) and Bob (home 1) are paired, talk and chat with
/// `codec`; returns the media view in the middle of the call.
async fn call_across(homes: &Homes, server: &Server, codec: &str) -> AdminMedia {
    let dir = Scratch::new();
    let (a_in, a_frames) = voice(dir.path(), "alice", 31, SECONDS);
    let (b_in, b_frames) = voice(dir.path(), "bob", 32, SECONDS);
    let (a_out, b_out) = (dir.join("alice-heard.wav"), dir.join("bob-heard.wav"));
    let in_home = |site: usize, name, input: &Path, output: &Path| {
        let ns = Some(homes.sites[site].client_ns.as_str());
        Proc::start_in(ns, &server.url, name, input, output, &["--codec", codec])
    };
    let mut alice = in_home(0, "alice", &a_in, &a_out);
    let mut bob = in_home(1, "bob", &b_in, &b_out);
    common::sip_registered([&mut alice, &mut bob]).await;
    // The PBX sees each client at its router's public address (its view
    // of the bindings is refreshed every 100 ms).
    let from_routers = |conf: &str| {
        homes
            .sites
            .iter()
            .all(|s| conf.contains(&format!("source={}:", s.wan)))
    };
    let mut conf = String::new();
    for _ in 0..30 {
        conf = server.admin("/v1/admin/sip-conf").await;
        if from_routers(&conf) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        from_routers(&conf),
        "bindings come from the routers' addresses: {conf}"
    );
    let (sa, sb) = common::connect(&mut alice, &mut bob).await;
    assert_eq!(sa, sb, "both sides show the same SAS");
    common::chat(&mut alice, &mut bob, "hello from behind one NAT").await;
    common::chat(&mut bob, &mut alice, "and back from behind another").await;
    let frames = a_frames.len();
    let (sa, sb) = tokio::join!(
        alice.all_audio_through(frames),
        bob.all_audio_through(frames)
    );
    eprintln!("alice: {sa}\nbob: {sb}");
    let during = server.media().await;
    common::hang_up_and_quit(&mut alice, &mut bob).await;
    for (heard, sent, who) in [
        (&b_out, &a_frames, "alice→bob"),
        (&a_out, &b_frames, "bob→alice"),
    ] {
        // PCM16: the speech frames bit-exact, in order; Opus: alike once
        // decoded.
        let min = if codec == "pcm16" { 0.99 } else { 0.8 };
        eprintln!("{who}:");
        common::heard::assert_heard(heard, sent, 8000, codec, min);
    }
    during
}

/// The call's media went through the built-in relay, and its ports are
/// free again once the call is over.
async fn relayed_and_released(server: &Server, during: &AdminMedia, frames: u64) {
    relayed_and_released_at_least(server, during, frames).await;
}

/// [`relayed_and_released`] for a call whose sides sent at least `frames`
/// packets each.
async fn relayed_and_released_at_least(server: &Server, during: &AdminMedia, frames: u64) {
    assert_eq!(during.mode, "builtin");
    assert_eq!(during.calls.len(), 1, "{during:?}");
    let call = &during.calls[0];
    for (side, c) in [("caller", &call.caller), ("callee", &call.callee)] {
        assert!(
            c.packets >= frames,
            "{side} sent its audio through the relay: {call:?}"
        );
    }
    let mut after = server.media().await;
    for _ in 0..20 {
        if after.calls.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = server.media().await;
    }
    assert!(after.calls.is_empty(), "{after:?}");
    assert_eq!(after.ports_free, after.ports_capacity);
}

async fn through_builtin_relay(tag: u8, nat: Nat) {
    let Some(homes) = Homes::new(tag, 2, nat) else {
        return;
    };
    let server = Server::start(homes.sites[0].host, MediaRelay::Builtin, None).await;
    // The same homes, a PCM16 call, then an Opus one.
    let frames = (SECONDS * 50.0) as u64;
    let during = call_across(&homes, &server, "pcm16").await;
    relayed_and_released(&server, &during, frames).await;
    let during = call_across(&homes, &server, "opus").await;
    // Opus's DTX leaves the pauses out.
    relayed_and_released_at_least(&server, &during, frames / 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_two_symmetric_nats_talk_through_the_builtin_relay() {
    through_builtin_relay(1, Nat::Symmetric).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_two_port_preserving_nats_talk_through_the_builtin_relay() {
    through_builtin_relay(2, Nat::PortPreserving).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_two_symmetric_nats_talk_through_a_real_rtpengine() {
    let Some(homes) = Homes::new(3, 2, Nat::Symmetric) else {
        return;
    };
    let public = homes.sites[0].host;
    let dir = Scratch::new();
    let (mut rtpengine, ng, _) = rtpengine::start(dir.path(), public);
    let ng = SocketAddr::new("127.0.0.1".parse().unwrap(), ng);
    tokio::time::sleep(Duration::from_millis(500)).await;
    rtpengine.assert_running();
    let server = Server::start(public, MediaRelay::Rtpengine, Some(ng)).await;
    for codec in ["pcm16", "opus"] {
        rtpengine_call(&homes, &server, &mut rtpengine, codec).await;
    }
}

async fn rtpengine_call(homes: &Homes, server: &Server, rtpengine: &mut Peer, codec: &str) {
    let during = call_across(homes, server, codec).await;
    assert_eq!(during.mode, "rtpengine");
    assert_eq!(during.calls.len(), 1, "{during:?}");
    rtpengine.assert_running();
    // rtpengine saw the call: its log names the Call-ID the PBX anchored.
    let log = rtpengine.log();
    assert!(
        log.contains(&during.calls[0].sip_call_id),
        "rtpengine never saw the call: {log}"
    );
}
