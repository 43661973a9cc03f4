//! `--pbx kamailio` against the real thing (issue #24): a `redis-server`
//! and Kamailio nodes running the shipped `deploy/kamailio/kamailio.cfg`
//! (db_redis reading the shipped schemas), started by the test, and a
//! myturn-server in this process writing the accounts.
//!
//! * Users registered through the server get SIP accounts Kamailio
//!   authenticates; a wrong password is refused; after logout or a kick
//!   the REGISTER is refused, and the rows and registrations are gone.
//! * Two nodes on one Redis: a user registered on node A is called, by
//!   extension, from a user on node B (usrloc shared, Path routing), the
//!   media anchored in rtpengine.
//! * Over TLS: a user registered over TLS on node A is called from node
//!   B (node to node over TLS, as her Path says), node B on SHA-256.
//! * Redis down: `/healthz` degraded and says why; Redis back: in sync by
//!   itself, nothing lost.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{self, Live};
use myturn_server::pbx::PbxKind;
use myturn_sip::driver::{self, SipHandle};
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{Config as UaConfig, EndedBy, Event};
use myturn_testkit::kamailio::modules;
use myturn_testkit::kamailio_node::{Cluster, Node, SHIPPED_MODULES};
use myturn_testkit::ports::free_udp_port;
use myturn_testkit::redis::Redis;
use myturn_testkit::sip::{ended, expect};
use myturn_testkit::tls::TestCa;
use myturn_testkit::{rtpengine, skip, Peer, Scratch};
use serde_json::Value;

/// The nodes' addresses: loopback, but not the clients' 127.0.0.1, so
/// the script tells a node from a client by its address.
const NODE_A: [u8; 4] = [127, 0, 0, 2];
const NODE_B: [u8; 4] = [127, 0, 0, 3];
const PEERS: &str = "127.0.0.2/32,127.0.0.3/32";

/// Redis, Kamailio and its modules are here (or SKIPPED / failed).
fn ready() -> bool {
    skip::all_installed(&["redis-server", "kamailio"]) && modules(SHIPPED_MODULES).is_some()
}

/// A node of the shipped config on `ip`, reading `redis`, media in the
/// rtpengine at ng port `ng`: the node and its address.
fn node(
    dir: &Path,
    ip: [u8; 4],
    redis: &Redis,
    domain: &str,
    ng: u16,
    id: u32,
) -> (Peer, SocketAddr) {
    let dburl = redis.url_db(1);
    let cluster = Cluster {
        dburl: &dburl,
        domain,
        peers: PEERS,
        ng,
    };
    let listen = SocketAddr::from((ip, free_udp_port()));
    (Node::shipped(dir, listen, &cluster, id).start(), listen)
}

/// The server with `--pbx kamailio` on `redis`, handing out `domain`.
async fn server(redis: &Redis, domain: &str) -> Live {
    let mut cfg = common::config();
    cfg.pbx = PbxKind::Kamailio;
    cfg.kamailio_redis = Some(redis.url_db(1));
    cfg.sip_domain = Some(domain.to_owned());
    cfg.coalesce_ms = 20;
    let live = common::live(&cfg).await;
    in_sync(&live, true).await;
    live
}

/// Waits until `/healthz` says the PBX is (or is not) in sync; returns it.
async fn in_sync(live: &Live, want: bool) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let h: Value = live.get("/healthz", None).await.json().await.unwrap();
        if h["pbx_in_sync"] == want {
            return h;
        }
        assert!(Instant::now() < end, "pbx_in_sync never {want}: {h}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An agent on a fresh loopback port (127.0.0.1) with `user`'s
/// credentials, through the node at `proxy`; `password` overrides.
async fn agent(user: &Value, proxy: SocketAddr, password: Option<&str>) -> SipHandle {
    let sip = &user["sip"];
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut cfg = UaConfig::new(
        local,
        proxy,
        sip["username"].as_str().unwrap(),
        password.unwrap_or_else(|| sip["password"].as_str().unwrap()),
    );
    cfg.domain = sip["domain"].as_str().unwrap().to_owned();
    cfg.expires = 120;
    driver::start(socket, cfg, Box::new(rand_core::OsRng)).unwrap()
}

/// REGISTERs: `Ok` or the refusal's status code.
async fn register(h: &mut SipHandle) -> Result<(), u16> {
    h.register().await.unwrap();
    expect(h, "a REGISTER's outcome", |e| match e {
        Event::Registered { .. } => Some(Ok(())),
        Event::RegistrationFailed { code, .. } => Some(Err(*code)),
        _ => None,
    })
    .await
}

/// A plain Redis client of the test's own.
async fn redis_conn(redis: &Redis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url_db(1))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn hash(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = redis::cmd("HGETALL").arg(key).query_async(c).await.unwrap();
    v.sort();
    v
}

async fn exists(c: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<u32>(c)
        .await
        .unwrap()
        == 1
}

/// Waits until `key` is gone.
async fn gone(c: &mut redis::aio::MultiplexedConnection, key: &str) {
    let end = Instant::now() + Duration::from_secs(5);
    while exists(c, key).await {
        assert!(Instant::now() < end, "{key} still in Redis");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_authenticates_the_accounts_the_server_writes_until_the_user_leaves() {
    if !ready() {
        return;
    }
    let t0 = Instant::now();
    let dir = Scratch::new();
    let redis = Redis::start();
    // The node's address is only known once it is chosen: the domain is
    // a name every node answers to.
    let domain = "sip.myturn.test";
    let live = server(&redis, domain).await;
    let (mut kam, proxy) = node(&dir.join("a"), NODE_A, &redis, domain, free_udp_port(), 1);

    let [alice, bob, carol] = live.register_all(["alice", "bob", "carol"]).await;
    let mut c = redis_conn(&redis).await;
    let ext = |u: &Value| u["sip"]["extension"].as_str().unwrap().to_owned();
    let pw = |u: &Value| u["sip"]["password"].as_str().unwrap().to_owned();
    assert_eq!(
        hash(&mut c, "subscriber:entry::alice").await,
        vec![
            ("domain".to_owned(), domain.to_owned()),
            ("password".to_owned(), pw(&alice)),
            ("username".to_owned(), "alice".to_owned())
        ]
    );
    assert_eq!(
        hash(&mut c, &format!("dbaliases:entry::{}", ext(&bob))).await,
        vec![
            ("alias_domain".to_owned(), domain.to_owned()),
            ("alias_username".to_owned(), ext(&bob)),
            ("domain".to_owned(), domain.to_owned()),
            ("username".to_owned(), "bob".to_owned())
        ]
    );

    let mut a = agent(&alice, proxy, None).await;
    let mut b = agent(&bob, proxy, None).await;
    let mut wrong = agent(&carol, proxy, Some("not-carols-password")).await;
    assert_eq!(register(&mut a).await, Ok(()));
    assert_eq!(register(&mut b).await, Ok(()));
    let refused = register(&mut wrong).await;
    assert!(matches!(refused, Err(401 | 403)), "{refused:?}");
    assert!(exists(&mut c, "location:usrdom::alice").await);
    assert!(!exists(&mut c, "location:usrdom::carol").await);

    // Bob logs out, alice is kicked: their rows and registrations go, and
    // a REGISTER with their old credentials is refused.
    let r = live.delete("/v1/me", bob["token"].as_str().unwrap()).await;
    assert!(r.status().is_success());
    let r = live
        .http
        .delete(format!("{}/v1/admin/users/alice", live.base))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for key in [
        "subscriber:entry::bob".to_owned(),
        format!("dbaliases:entry::{}", ext(&bob)),
        "location:usrdom::bob".to_owned(),
        "subscriber:entry::alice".to_owned(),
        "location:usrdom::alice".to_owned(),
    ] {
        gone(&mut c, &key).await;
    }
    for (who, h) in [("bob", &mut b), ("alice", &mut a)] {
        let r = register(h).await;
        assert!(matches!(r, Err(401 | 403)), "{who} after leaving: {r:?}");
    }
    // Carol, still a user, is still there; the admin view hides her password.
    assert!(exists(&mut c, "subscriber:entry::carol").await);
    let view = live.admin_get("/v1/admin/sip-conf").await.to_string();
    assert!(view.contains("subscriber:entry::carol"), "{view}");
    assert!(!view.contains(&pw(&carol)), "{view}");
    let m = live.metrics().await;
    assert!(m.contains("myturn_kamailio_accounts 1"), "{m}");
    assert!(
        m.contains("myturn_kamailio_accounts_removed_total 2"),
        "{m}"
    );
    kam.assert_running();
    eprintln!("accounts test: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_node_a_is_called_from_node_b_through_the_shared_location_and_rtpengine() {
    if !ready() || !skip::installed("rtpengine") {
        return;
    }
    let t0 = Instant::now();
    let dir = Scratch::new();
    let redis = Redis::start();
    let (mut rtp, ng, media) = rtpengine::start(dir.path(), "127.0.0.1".parse().unwrap());
    rtpengine::wait_ready(&mut rtp, ng);
    let domain = "sip.myturn.test";
    let live = server(&redis, domain).await;
    let (mut ka, pa) = node(&dir.join("a"), NODE_A, &redis, domain, ng, 1);
    let (mut kb, pb) = node(&dir.join("b"), NODE_B, &redis, domain, ng, 2);

    let [alice, bob] = live.register_all(["alice", "bob"]).await;
    let mut a = agent(&alice, pa, None).await;
    let mut b = agent(&bob, pb, None).await;
    assert_eq!(register(&mut a).await, Ok(()));
    assert_eq!(register(&mut b).await, Ok(()));
    // Alice's binding, in the shared usrloc, names node A as its Path.
    let mut c = redis_conn(&redis).await;
    let entries: Vec<String> = redis::cmd("SMEMBERS")
        .arg("location:usrdom::alice")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let row = hash(&mut c, &entries[0]).await;
    let path = &row.iter().find(|(k, _)| k == "path").unwrap().1;
    assert!(path.contains(&format!("sip:{pa};lr;")), "{path}");

    // Bob, on node B, calls alice's extension.
    let ext = alice["sip"]["extension"].as_str().unwrap();
    let offer = Sdp::new(
        "127.0.0.1:40000".parse().unwrap(),
        8000,
        Some("a2V5".into()),
        7,
    )
    .render();
    let call_b = b.invite(ext, &offer).await.unwrap();
    let call_a = expect(&mut a, "IncomingCall", |e| match e {
        Event::IncomingCall {
            call,
            from_user,
            offer,
            ..
        } => {
            assert_eq!(from_user, "bob");
            // rtpengine anchors the media; our key rides through.
            let o = offer.as_ref().unwrap();
            assert!(media.contains(&o.media.port()), "{o:?}");
            assert_eq!(o.key.as_deref(), Some("a2V5"));
            Some(*call)
        }
        _ => None,
    })
    .await;
    let answer = Sdp::new(
        "127.0.0.1:40002".parse().unwrap(),
        8000,
        Some("a2V5".into()),
        8,
    )
    .render();
    a.answer(call_a, &answer).await.unwrap();
    expect(&mut b, "Answered", |e| match e {
        Event::Answered { call, answer, .. } if *call == call_b => {
            let port = answer.as_ref().unwrap().media.port();
            assert!(media.contains(&port), "{answer:?}");
            Some(())
        }
        _ => None,
    })
    .await;
    // Alice hangs up: her BYE goes back through both nodes to bob.
    a.hangup(call_a).await.unwrap();
    ended(&mut b, "CallEnded", EndedBy::Remote).await;
    // Node B (the caller's) anchored the call, and let it go again.
    let log = rtp.log();
    assert!(log.contains("offer") && log.contains("delete"), "{log}");

    // An extension nobody has: no call.
    let nobody = b.invite("999999", &offer).await.unwrap();
    myturn_testkit::sip::failed(&mut b, "404", nobody, 404).await;
    for p in [&mut ka, &mut kb, &mut rtp] {
        p.assert_running();
    }
    eprintln!("two-node test: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_degrades_healthz_and_service_comes_back_by_itself() {
    if !skip::installed("redis-server") {
        return;
    }
    let t0 = Instant::now();
    let mut redis = Redis::start();
    let live = server(&redis, "sip.myturn.test").await;
    live.register("alice").await;
    redis.stop();
    // A registration while Redis is down: the API still answers, and
    // /healthz says why the PBX is out of step.
    let r = live.post_user("bob").await;
    assert!(r.status().is_success(), "{}", r.status());
    let h = in_sync(&live, false).await;
    assert_eq!(h["status"], "degraded");
    let why = h["pbx_error"].as_str().unwrap();
    assert!(why.contains("Redis"), "{why}");
    redis.resume();
    in_sync(&live, true).await;
    let mut c = redis_conn(&redis).await;
    assert!(exists(&mut c, "subscriber:entry::alice").await);
    assert!(exists(&mut c, "subscriber:entry::bob").await);
    // A flushed Redis is refilled too (the layout marker is gone).
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    live.register("carol").await;
    for key in [
        "subscriber:entry::alice",
        "subscriber:entry::bob",
        "version:entry::location",
    ] {
        let end = Instant::now() + Duration::from_secs(5);
        while !exists(&mut c, key).await {
            assert!(Instant::now() < end, "{key} not written again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("redis-down test: {:?}", t0.elapsed());
}

/// The tls module's config for the test CA's certificate in `dir`.
fn tls_cfg(dir: &Path, ca: &TestCa) -> std::path::PathBuf {
    let path = dir.join("tls.cfg");
    std::fs::write(
        &path,
        format!(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
             private_key = {}\ncertificate = {}\n\n\
             [client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
            ca.key.display(),
            ca.cert.display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_registered_over_tls_on_node_a_is_called_from_node_b_over_udp_with_sha_256() {
    if !ready() {
        return;
    }
    let t0 = Instant::now();
    let dir = Scratch::new();
    let ca = TestCa::new(dir.path(), "Kamailio cluster CA", "localhost");
    let tls = tls_cfg(dir.path(), &ca);
    let redis = Redis::start();
    let domain = "sip.myturn.test";
    let live = server(&redis, domain).await;
    let dburl = redis.url_db(1);
    let cluster = Cluster {
        dburl: &dburl,
        domain,
        peers: PEERS,
        ng: free_udp_port(),
    };
    // Both nodes take TLS; node B reaches alice's node through her Path
    // over UDP, node A her over her TLS connection. Node B challenges
    // SHA-256.
    let mut nodes = Vec::new();
    for (i, (ip, digest)) in [(NODE_A, "MD5"), (NODE_B, "SHA-256")]
        .into_iter()
        .enumerate()
    {
        let udp = SocketAddr::from((ip, free_udp_port()));
        let tcp = SocketAddr::from((ip, myturn_testkit::ports::free_tcp_port()));
        let sub = dir.join(&format!("node{i}"));
        let peer = Node::shipped(&sub, udp, &cluster, i as u32 + 1)
            .switch("WITH_TLS")
            .define("TLS_PORT", tcp.port())
            .string("TLS_CONFIG", tls.display())
            .string("DIGEST", digest)
            .start();
        nodes.push((peer, udp, tcp));
    }
    let [alice, bob] = live.register_all(["alice", "bob"]).await;
    let sip = &alice["sip"];
    let target = driver::TlsTarget {
        proxy: nodes[0].2,
        name: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        connector: ca.connector(),
    };
    let mut cfg = UaConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        target.proxy,
        sip["username"].as_str().unwrap(),
        sip["password"].as_str().unwrap(),
    );
    cfg.domain = domain.to_owned();
    cfg.expires = 120;
    let mut a = driver::start_tls(target, cfg, Box::new(rand_core::OsRng))
        .await
        .unwrap();
    let mut b = agent(&bob, nodes[1].1, None).await;
    assert_eq!(register(&mut a).await, Ok(()));
    assert_eq!(register(&mut b).await, Ok(()), "SHA-256 on node B");
    let ext = alice["sip"]["extension"].as_str().unwrap();
    // No rtpengine here: the callee's SDP is what the caller sent.
    let offer = Sdp::new("127.0.0.1:40000".parse().unwrap(), 8000, None, 7).render();
    let _ = b.invite(ext, &offer).await.unwrap();
    let call_a = expect(&mut a, "IncomingCall over TLS", |e| match e {
        Event::IncomingCall {
            call, from_user, ..
        } => {
            assert_eq!(from_user, "bob");
            Some(*call)
        }
        _ => None,
    })
    .await;
    a.reject(call_a, 486).await.unwrap();
    for (p, _, _) in &mut nodes {
        p.assert_running();
    }
    eprintln!("TLS test: {:?}", t0.elapsed());
}
