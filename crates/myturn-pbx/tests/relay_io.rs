//! The built-in relay on real UDP sockets (loopback): latching and
//! strangers, floods on ports no call holds, and thousands of calls opened
//! and closed without losing a port or a socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use myturn_pbx::media::MediaCommand;
use myturn_pbx::relay::{LegStats, PortPool, Side};
use myturn_pbx::relay_driver::RelayIo;
use rand_core::{OsRng, RngCore};
use tokio::net::UdpSocket;

const LO: &str = "127.0.0.1";

/// Forwarded packets, bytes, dropped packets.
fn leg(packets: u64, bytes: u64, dropped: u64) -> LegStats {
    LegStats {
        packets,
        bytes,
        dropped,
    }
}

fn lo() -> IpAddr {
    LO.parse().unwrap()
}

/// `pairs` free port pairs on loopback, below the ephemeral range.
fn free_range(pairs: u16) -> std::ops::RangeInclusive<u16> {
    for _ in 0..200 {
        let base = (21_000 + (OsRng.next_u32() % 8_000) as u16) & !1;
        let hi = base + 2 * pairs - 1;
        if (base..=hi).all(|p| StdUdpSocket::bind((LO, p)).is_ok()) {
            return base..=hi;
        }
    }
    panic!("no free port range");
}

/// The tests count this process's open files, so they run one at a time,
/// each in a runtime made once it holds the lock (a runtime made meanwhile
/// by a test still starting would open files of its own).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time<F: std::future::Future>(paused: bool, test: impl FnOnce() -> F) -> F::Output {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(paused)
        .build()
        .unwrap();
    rt.block_on(test())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn open(id: u64, ports: [u16; 2]) -> MediaCommand {
    MediaCommand::Open {
        id,
        call_id: format!("call-{id}"),
        ports,
        expect: [lo(), lo()],
        timeout: Duration::from_secs(30),
    }
}

async fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 2048];
    match tokio::time::timeout(Duration::from_millis(300), s.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
        _ => None,
    }
}

/// Waits until the relay's shared counters show `f` true.
async fn until(relay: &RelayIo, f: impl Fn(&RelayIo) -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f(relay) {
        assert!(
            Instant::now() < end,
            "relay counters never got there: {:?}",
            relay.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn strangers_are_dropped_and_never_read_once_latched_and_payloads_pass_untouched() {
    one_at_a_time(false, || async {
        let range = free_range(1);
        let ports = [*range.start(), *range.start() + 1];
        let (mut relay, _ended) = RelayIo::new(lo());
        relay.apply(open(1, ports));
        let caller = UdpSocket::bind((LO, 0)).await.unwrap();
        let callee = UdpSocket::bind((LO, 0)).await.unwrap();
        let to_caller_side = SocketAddr::new(lo(), ports[0]);
        let to_callee_side = SocketAddr::new(lo(), ports[1]);
        // The answer told the relay where the callee listens.
        relay.apply(MediaCommand::Sdp {
            id: 1,
            side: Side::Callee,
            sdp: callee.local_addr().unwrap(),
        });
        // Any bytes at all, forwarded as they are: the relay never parses them.
        let payload: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        caller.send_to(&payload, to_caller_side).await.unwrap();
        let (got, from) = recv(&callee).await.expect("forwarded to the callee");
        assert_eq!(got, payload);
        assert_eq!(from, to_callee_side, "sent from the port facing the callee");
        // A stranger before the callee latched: read, dropped and counted.
        let other_ip = UdpSocket::bind(("127.0.0.2", 0)).await.unwrap();
        other_ip.send_to(b"inject", to_callee_side).await.unwrap();
        until(&relay, |r| r.calls()[0].legs[1].dropped == 1).await;
        callee.send_to(b"back", to_callee_side).await.unwrap();
        let (got, from) = recv(&caller)
            .await
            .expect("forwarded to the latched caller");
        assert_eq!(got, b"back");
        assert_eq!(from, to_caller_side);

        // Strangers once both sides latched: another port on the caller's
        // IP (RTPBleed), and another IP altogether. Neither is forwarded,
        // and neither reaches the relay: each side's socket is connected to
        // its latched address, so the kernel drops them unread.
        let same_ip = UdpSocket::bind((LO, 0)).await.unwrap();
        same_ip.send_to(b"inject", to_caller_side).await.unwrap();
        other_ip.send_to(b"inject", to_caller_side).await.unwrap();
        other_ip.send_to(b"inject", to_callee_side).await.unwrap();
        assert_eq!(recv(&callee).await, None);
        assert_eq!(recv(&caller).await, None);
        let c = &relay.calls()[0];
        assert_eq!((c.legs[0].dropped, c.legs[1].dropped), (0, 1));
        assert_eq!((c.legs[0].packets, c.legs[0].bytes), (1, 700));
        assert_eq!((c.legs[1].packets, c.legs[1].bytes), (1, 4));
        // The call still works for its own sides.
        caller.send_to(b"still here", to_caller_side).await.unwrap();
        assert_eq!(recv(&callee).await.unwrap().0, b"still here");
        // Closed: the ports are free at once for anyone to bind.
        relay.apply(MediaCommand::Close { id: 1, why: "BYE" });
        let end = Instant::now() + Duration::from_secs(5);
        while StdUdpSocket::bind((LO, ports[0])).is_err()
            || StdUdpSocket::bind((LO, ports[1])).is_err()
        {
            assert!(Instant::now() < end, "ports still held after close");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(relay.totals(), leg(3, 714, 1));
    })
}

#[test]
fn a_flood_on_ports_no_call_holds_never_reaches_the_relay() {
    one_at_a_time(false, || async {
        let range = free_range(50);
        let mut pool = PortPool::new(range.clone());
        let ports = pool.allocate().unwrap();
        let (mut relay, _ended) = RelayIo::new(lo());
        relay.apply(open(1, ports));
        let flooder = StdUdpSocket::bind((LO, 0)).unwrap();
        // The call's task settles on its shard first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let fds = open_fds();
        let mut sent = 0;
        for p in range.clone().filter(|p| !ports.contains(p)) {
            for _ in 0..100 {
                let _ = flooder.send_to(&[0u8; 200], (LO, p));
                sent += 1;
            }
        }
        assert_eq!(sent, 9_800);
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Nothing holds those ports (anyone may bind them), the relay saw
        // nothing, and it opened nothing.
        for p in range.filter(|p| !ports.contains(p)) {
            assert!(StdUdpSocket::bind((LO, p)).is_ok(), "port {p} is held");
        }
        assert_eq!(relay.totals(), leg(0, 0, 0));
        assert_eq!(relay.calls()[0].legs, [Default::default(); 2]);
        assert_eq!(open_fds(), fds);
    })
}

#[test]
fn ten_thousand_calls_opened_and_closed_leak_no_port_and_no_socket() {
    one_at_a_time(false, || async {
        let range = free_range(200);
        let mut pool = PortPool::new(range.clone());
        let (mut relay, _ended) = RelayIo::new(lo());
        let fds = open_fds();
        for id in 0..10_000u64 {
            let ports = pool.allocate().unwrap();
            relay.apply(open(id, ports));
            relay.apply(MediaCommand::Close { id, why: "BYE" });
            pool.release(ports);
            // Let the closed call's task end, as the PBX's loop would.
            tokio::task::yield_now().await;
        }
        assert_eq!(relay.bind_failures, 0, "a port was still held when reused");
        assert!(relay.is_empty());
        assert_eq!(pool.available(), pool.capacity());
        let end = Instant::now() + Duration::from_secs(5);
        while open_fds() != fds {
            assert!(
                Instant::now() < end,
                "sockets leaked: {} open, {fds} before",
                open_fds()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for p in range {
            assert!(StdUdpSocket::bind((LO, p)).is_ok(), "port {p} leaked");
        }
    })
}

#[test]
fn a_silent_call_is_reported_after_the_media_timeout() {
    one_at_a_time(true, || async {
        let range = free_range(1);
        let ports = [*range.start(), *range.start() + 1];
        let (mut relay, mut ended) = RelayIo::in_runtime(lo());
        relay.apply(MediaCommand::Open {
            id: 7,
            call_id: "quiet".into(),
            ports,
            expect: [lo(), lo()],
            timeout: Duration::from_secs(30),
        });
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(ended.try_recv().is_err(), "not before the timeout");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(ended.recv().await, Some((7, "media timeout")));
    })
}
