//! Two `myturn --plain` clients through two Kamailio nodes and two of
//! three myturn-server nodes (issue #24): the shipped
//! `deploy/kamailio/kamailio.cfg`, both Kamailio nodes on one
//! `redis-server` (usrloc shared, `db_mode=3`, DB 1), three server nodes
//! (in this process) sharing their state in the same Redis (DB 0,
//! `--state`) with one JWT key file and `--pbx kamailio` writing the
//! accounts, the media anchored in a real rtpengine. All started by the
//! test. Alice registers with server node 1 and bob with node 2: they are
//! drawn from one pool, and each hears of it on their own node.
//!
//! Each client sits in a home behind its own symmetric NAT (the topology
//! of the NAT tests, myturn-testkit's `netns::Homes`), and is told one SIP
//! domain, an address no host has: each home's router plays the load
//! balancer in front of the nodes and sends its client to another node
//! (DNAT), so alice registers through node A and bob through node B.
//! Whoever calls, the call crosses both nodes, and reaches the callee
//! only through the node its NAT lets in: the one in its binding's Path.
//!
//! Checked: the bindings' Paths name each client's node, the same SAS on
//! both sides, chat both ways, at least 99% of the audio frames bit-exact
//! each way, the call's media through rtpengine (its offer, answer and
//! delete).
//!
//! Needs root; prints SKIPPED without it, and fails under CI.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{self, voice, Proc};
use myturn_testkit::kamailio::modules;
use myturn_testkit::kamailio_node::{Cluster, Node, SHIPPED_MODULES};
use myturn_testkit::netns::{nft, Homes, Nat};
use myturn_testkit::ports::free_udp_port;
use myturn_testkit::redis::Redis;
use myturn_testkit::{rtpengine, skip, Scratch};

/// The SIP domain clients are told: the "load balancer" in each home
/// router forwards it to that home's node.
const VIP: &str = "203.0.113.10:5060";
/// Seconds of speech each side sends.
const SECONDS: f32 = 2.0;

/// `redis-cli` against `redis`'s DB 1: its output.
fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "-n", "1"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Path of `user`'s one binding in the shared usrloc.
fn path_of(redis: &Redis, user: &str) -> String {
    let entries = redis_cli(redis, &["SMEMBERS", &format!("location:usrdom::{user}")]);
    let entries: Vec<&str> = entries.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(entries.len(), 1, "{user}'s bindings: {entries:?}");
    redis_cli(redis, &["HGET", entries[0], "path"])
}

/// A server node on the shared state, listening on `ip`: its address.
async fn serve_shared(cfg: &myturn_server::Config, ip: IpAddr) -> SocketAddr {
    let app = myturn_server::App::start(cfg, None).await.unwrap();
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_nats_on_two_kamailio_nodes_talk_through_rtpengine() {
    if !skip::all_installed(&["redis-server", "redis-cli", "kamailio", "rtpengine"])
        || modules(SHIPPED_MODULES).is_none()
    {
        return;
    }
    let Some(homes) = Homes::new(10, 2, Nat::Symmetric) else {
        return;
    };
    let t0 = Instant::now();
    let dir = Scratch::new();
    let redis = Redis::start();
    let public = homes.sites[0].host;
    let (mut rtp, ng, _) = rtpengine::start(dir.path(), public);
    rtpengine::wait_ready(&mut rtp, ng);

    // The servers first: their first pass writes the table versions the
    // Kamailio nodes check when they start.
    let dburl = redis.url_db(1);
    let keys = dir.join("jwt.keys");
    std::fs::write(&keys, format!("{}\n", "4b".repeat(32))).unwrap();
    let mut servers = Vec::new();
    for i in 1..=3 {
        let mut cfg = myturn_server::Config::defaults();
        cfg.state = myturn_server::config::StateUrl::Redis(redis.url_db(0));
        cfg.jwt_key_file = Some(keys.clone());
        cfg.node_id = Some(format!("api-{i}"));
        cfg.pbx = myturn_server::pbx::PbxKind::Kamailio;
        cfg.kamailio_redis = Some(dburl.clone());
        cfg.sip_domain = Some(VIP.to_owned());
        cfg.coalesce_ms = 20;
        servers.push(format!("http://{}", serve_shared(&cfg, public).await));
    }
    let http = reqwest::Client::new();
    let end = Instant::now() + Duration::from_secs(10);
    for url in &servers {
        loop {
            let h: serde_json::Value = http
                .get(format!("{url}/healthz"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if h["pbx_in_sync"] == true && h["state"] == "redis" {
                break;
            }
            assert!(Instant::now() < end, "never in sync: {h}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A node per home, on the host's side of that home's link.
    let nodes: Vec<SocketAddr> = homes
        .sites
        .iter()
        .map(|s| SocketAddr::new(s.host, free_udp_port()))
        .collect();
    let peers = nodes
        .iter()
        .map(|n| format!("{}/32", n.ip()))
        .collect::<Vec<_>>()
        .join(",");
    let cluster = Cluster {
        dburl: &dburl,
        domain: VIP,
        peers: &peers,
        ng,
    };
    let mut kamailios = Vec::new();
    for (i, (site, node)) in homes.sites.iter().zip(&nodes).enumerate() {
        let sub = dir.join(&format!("node{i}"));
        kamailios.push(Node::shipped(&sub, *node, &cluster, i as u32 + 1).start());
        let (vip_ip, vip_port) = VIP.split_once(':').unwrap();
        nft(
            &site.router_ns,
            &format!(
                "table ip lb {{\n\
                   chain pre {{ type nat hook prerouting priority dstnat; policy accept;\n\
                     ip daddr {vip_ip} udp dport {vip_port} dnat to {node}; }}\n\
                 }}\n"
            ),
        );
    }

    let (a_in, a_frames) = voice(dir.path(), "alice", 41, SECONDS);
    let (b_in, b_frames) = voice(dir.path(), "bob", 42, SECONDS);
    let (a_out, b_out) = (dir.join("alice-heard.wav"), dir.join("bob-heard.wav"));
    let ns = |i: usize| Some(homes.sites[i].client_ns.as_str());
    // PCM16, so the audio can be checked bit for bit (the Opus path is the
    // call-quality tests').
    let flags = ["--codec", "pcm16"];
    let mut alice = Proc::start_in(ns(0), &servers[0], "alice", &a_in, &a_out, &flags);
    let mut bob = Proc::start_in(ns(1), &servers[1], "bob", &b_in, &b_out, &flags);
    common::sip_registered([&mut alice, &mut bob]).await;
    // Each binding came in through its home's node, from its router's
    // public address, and names that node as the way in.
    for (user, i) in [("alice", 0), ("bob", 1)] {
        let path = path_of(&redis, user);
        assert!(
            path.contains(&format!("sip:{};lr;", nodes[i])),
            "{user}'s Path: {path}"
        );
        assert!(
            path.contains(&format!("received=sip:{}:", homes.sites[i].wan)),
            "{user}'s Path: {path}"
        );
    }

    let (sa, sb) = common::connect(&mut alice, &mut bob).await;
    assert_eq!(sa, sb, "both sides show the same SAS");
    common::chat(&mut alice, &mut bob, "hello through node A").await;
    common::chat(&mut bob, &mut alice, "and back through node B").await;
    let frames = a_frames.len();
    let (sa, sb) = tokio::join!(
        alice.all_audio_through(frames),
        bob.all_audio_through(frames)
    );
    eprintln!("alice: {sa}\nbob: {sb}");
    common::hang_up_and_quit(&mut alice, &mut bob).await;
    for (heard, sent, who) in [
        (&b_out, &a_frames, "alice→bob"),
        (&a_out, &b_frames, "bob→alice"),
    ] {
        eprintln!("{who}:");
        common::heard::assert_heard(heard, sent, 8000, "pcm16", 0.99);
    }
    // The media went through rtpengine, offered, answered and let go by
    // the caller's node.
    let log = rtp.log();
    for cmd in ["'offer'", "'answer'", "'delete'"] {
        assert!(
            log.contains(&format!("Received command {cmd}")),
            "{cmd}: {log}"
        );
    }
    for k in &mut kamailios {
        k.assert_running();
    }
    rtp.assert_running();
    let _: IpAddr = public;
    eprintln!("cluster NAT test: {:?}", t0.elapsed());
}
