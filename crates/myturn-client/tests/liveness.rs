//! Nobody waits on the dead (issue #12), with real `myturn --plain`
//! processes killed with SIGKILL in each state of a call, and the server
//! itself killed and started again mid-call. The survivor must be told
//! within 5 s, and then be paired with a live newcomer, never the ghost.
//! (A network that vanishes while the process lives: `netns_liveness.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{builtin_pbx, serve, write_wav, Proc};
use myturn_client::speech;

/// The limit of the issue: the survivor knows within 5 s of a death.
const TOLD_WITHIN: Duration = Duration::from_secs(5);

fn voice(dir: &Path, name: &str, seed: u64) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.wav"));
    write_wav(&p, &speech::frames(seed, 8000, 1.0));
    p
}

async fn start(server: &str, dir: &Path, name: &'static str, seed: u64) -> Proc {
    let mut p = Proc::start(
        server,
        name,
        &voice(dir, name, seed),
        &dir.join(format!("{name}-out.wav")),
    );
    p.expect("sip registered").await;
    p
}

/// `who` and a newcomer get connected; `who` is paired with `newcomer`.
async fn connects_with(who: &mut Proc, newcomer: &mut Proc) {
    newcomer.send("ready").await;
    let paired = who.expect("paired peer=").await;
    assert!(
        paired.starts_with(&format!("paired peer={} ", newcomer.name)),
        "{}: {paired}",
        who.name
    );
    let (a, b) = tokio::join!(
        who.expect("connected sas="),
        newcomer.expect("connected sas=")
    );
    assert_eq!(a, b);
}

async fn quit(p: &mut Proc) {
    p.send("quit").await;
    p.expect("bye").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_killed_while_waiting_is_never_paired() {
    let server = serve(&builtin_pbx()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut ghost = start(&server, dir.path(), "ghost", 1).await;
    let mut bob = start(&server, dir.path(), "bob", 2).await;
    let mut carol = start(&server, dir.path(), "carol", 3).await;
    ghost.send("ready").await;
    ghost.expect("waiting").await;
    ghost.signal("KILL");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Bob comes right after the death, inside the server's grace: he
    // waits, he is not handed the ghost.
    bob.send("ready").await;
    bob.expect("waiting").await;
    let early = bob.lines_for(Duration::from_secs(4)).await;
    assert!(
        !early.iter().any(|l| l.starts_with("paired")),
        "bob was paired with a dead user: {early:?}"
    );
    // Meanwhile line mode serves commands while waiting.
    bob.send("lobby anyone?").await;
    bob.expect("lobby bob: anyone?").await;
    bob.send("stats").await;
    bob.expect("error not in a call yet").await;

    // A live newcomer gets bob at once.
    connects_with(&mut bob, &mut carol).await;
    quit(&mut bob).await;
    quit(&mut carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_killed_after_pairing_makes_the_survivor_draw_again() {
    let server = serve(&builtin_pbx()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = start(&server, dir.path(), "alice", 4).await;
    let mut bob = start(&server, dir.path(), "bob", 5).await;
    let mut carol = start(&server, dir.path(), "carol", 6).await;
    // Alice freezes while waiting (still alive to the server for a moment)
    // and is paired with bob; she never gets to the call. Then she dies.
    alice.send("ready").await;
    alice.expect("waiting").await;
    alice.signal("STOP");
    bob.send("ready").await;
    bob.expect("paired peer=alice").await;
    alice.signal("KILL");
    let (redraw, took) = bob.expect_within("redraw ", TOLD_WITHIN).await;
    assert!(redraw.contains("partner left"), "{redraw}");
    eprintln!("bob drew again {took:?} after alice's death");
    connects_with(&mut bob, &mut carol).await;
    quit(&mut bob).await;
    quit(&mut carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_can_be_stopped_and_quit_logs_out() {
    let server = serve(&builtin_pbx()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = start(&server, dir.path(), "alice", 7).await;
    let mut bob = start(&server, dir.path(), "bob", 8).await;
    alice.send("ready").await;
    alice.expect("waiting").await;
    alice.send("hangup").await;
    alice.expect("stopped waiting").await;
    // Alice left the pool: bob waits alone.
    bob.send("ready").await;
    bob.expect("waiting").await;
    let early = bob.lines_for(Duration::from_secs(1)).await;
    assert!(!early.iter().any(|l| l.starts_with("paired")), "{early:?}");
    // Quitting while waiting answers at once and logs out (the name is
    // free again).
    bob.send("quit").await;
    bob.expect_within("bye", Duration::from_secs(5)).await;
    let again = start(&server, dir.path(), "bob", 9).await;
    drop(again);
    quit(&mut alice).await;
}

/// A server on fixed ports, in its own runtime: dropping the runtime kills
/// it as abruptly as a crash (every socket closes at once).
struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(cfg: &myturn_server::Config, http: std::net::SocketAddr) -> Server {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (up_tx, up_rx) = std::sync::mpsc::channel();
        let cfg = cfg.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = myturn_server::App::new(&cfg, None).unwrap();
                let listener = tokio::net::TcpListener::bind(http).await.unwrap();
                up_tx.send(()).unwrap();
                tokio::select! {
                    _ = app.serve(listener, std::future::pending()) => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_background();
        });
        up_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Server {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn kill(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn free_tcp() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn free_udp() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_dies_mid_call_the_call_goes_on_and_clients_come_back() {
    let http = free_tcp();
    let mut cfg = builtin_pbx();
    cfg.sip_listen = free_udp();
    // Direct media: only then does a call outlive the server. Through the
    // built-in relay (the default) the relay dies with the server and the
    // call ends within the peer timeout, like a call through a crashed
    // Asterisk.
    cfg.media_relay = myturn_server::config::MediaRelay::Off;
    let url = format!("http://{http}");
    let server = Server::start(&cfg, http);
    let dir = tempfile::tempdir().unwrap();
    let mut alice = start(&url, dir.path(), "alice", 10).await;
    let mut bob = start(&url, dir.path(), "bob", 11).await;
    alice.send("ready").await;
    bob.send("ready").await;
    let (a, b) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(a, b);

    server.kill();
    alice.expect_within("server lost", TOLD_WITHIN).await;
    bob.expect_within("server lost", TOLD_WITHIN).await;
    // The media path is end to end: the call goes on without the server.
    alice.send("say still here?").await;
    bob.expect("chat alice: still here?").await;

    // The server comes back (empty: users live in memory). Mid-call the
    // clients only note it; once the call ends they register again.
    let server = Server::start(&cfg, http);
    tokio::time::sleep(Duration::from_secs(2)).await;
    bob.send("say yes").await;
    alice.expect("chat bob: yes").await;
    alice.send("hangup").await;
    alice.expect("ended by=us").await;
    // Bob's BYE path went through the old PBX's bindings: he hears the
    // BYE, or his media timeout ends the call.
    bob.expect("ended by=").await;
    for p in [&mut alice, &mut bob] {
        p.expect_within("server back", Duration::from_secs(15))
            .await;
    }
    assert!(alice
        .seen
        .iter()
        .any(|l| l.starts_with("registered name=alice")));
    // And they can talk again through the new server.
    alice.send("ready").await;
    bob.send("ready").await;
    let (a, b) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(a, b);
    quit(&mut alice).await;
    quit(&mut bob).await;
    server.kill();
}
