//! The built-in relay's I/O: one tokio task per relayed call owns the
//! call's two UDP sockets and its [`MediaPath`], and forwards datagrams
//! between them as the path decides. [`RelayIo::apply`] carries out the
//! PBX core's [`MediaCommand`]s; a call that ends on its own (media
//! timeout, ports that could not be bound) is reported on the channel
//! [`RelayIo::new`] returns, for [`crate::core::Pbx::handle_media_ended`].
//!
//! Calls are sharded over current-thread runtimes, one thread per core
//! ([`RelayIo::new`]): a call's task never leaves its thread, so a
//! datagram wakes one task on one thread, with no work-stealing between
//! cores ([`RelayIo::in_runtime`] keeps them on the caller's runtime, for
//! tests on a paused clock). Each wake-up reads the socket in batches
//! (the private `udp_batch` module: `recvmmsg`, readiness cleared when the queue is
//! left empty, so a lone datagram costs one read and one send, not the
//! extra read that only says "would block").
//!
//! Unallocated ports have no socket at all, so a flood aimed at them never
//! reaches this process. Once a side latched, its socket is connected to
//! the latched address: the kernel then drops every other source's
//! datagrams on that port before they reach the socket (no wake-up, no
//! syscall here). Before latching they are read and dropped by the path.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Now, as tokio's clock sees it (paused in tests, the real one otherwise).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

use std::cell::RefCell;
use std::io::IoSliceMut;

use quinn_udp::RecvMeta;
use tokio::sync::mpsc;

use crate::media::MediaCommand;
use crate::relay::{Leg, LegStats, MediaPath, Side, Verdict};
use crate::udp_batch::{BatchSocket, Received, BATCH as RECV_BATCH};

/// Largest datagram relayed. A datagram that fills the buffer may have
/// been cut short, so it is dropped, never forwarded truncated.
const MAX_DATAGRAM: usize = 8192;
/// Batched reads from one socket per wake-up before the task yields (up
/// to [`RECV_BATCH`] datagrams each).
const ROUNDS: usize = 4;

thread_local! {
    /// The receive buffers, one set per thread: a call's task uses them
    /// between two awaits only, so the calls on a shard share them (a
    /// batch of [`MAX_DATAGRAM`]-byte buffers per thread, not per call).
    static BUFS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A relayed call's end, reported by the relay itself.
pub type Ended = (u64, &'static str);

/// One side's counters, shared with the task.
#[derive(Debug, Default)]
struct LegCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
}

impl LegCounters {
    fn store(&self, s: &LegStats) {
        self.packets.store(s.packets, Ordering::Relaxed);
        self.bytes.store(s.bytes, Ordering::Relaxed);
        self.dropped.store(s.dropped, Ordering::Relaxed);
    }

    fn load(&self) -> LegStats {
        LegStats {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// A relayed call as the admin view and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayCall {
    /// The anchored call's id.
    pub id: u64,
    /// This hop's SIP Call-ID (to find the call in SIP logs).
    pub call_id: String,
    /// The ports: the caller's side, then the callee's.
    pub ports: [u16; 2],
    /// Caller's side, then callee's: what each sent through the relay.
    pub legs: [LegStats; 2],
}

#[derive(Debug)]
struct Running {
    call_id: String,
    ports: [u16; 2],
    ctl: mpsc::UnboundedSender<(Side, SocketAddr)>,
    counters: Arc<[LegCounters; 2]>,
}

impl Running {
    /// What call `id` looks like now.
    fn figures(&self, id: u64) -> RelayCall {
        RelayCall {
            id,
            call_id: self.call_id.clone(),
            ports: self.ports,
            legs: [self.counters[0].load(), self.counters[1].load()],
        }
    }
}

/// A call handed to a shard: its sockets (bound, not yet registered with
/// any runtime) and what its task needs.
struct Start {
    id: u64,
    sockets: [std::net::UdpSocket; 2],
    path: MediaPath,
    ctl: mpsc::UnboundedReceiver<(Side, SocketAddr)>,
    counters: Arc<[LegCounters; 2]>,
    ended: mpsc::UnboundedSender<Ended>,
}

impl Start {
    /// Registers the sockets with the runtime it runs on, and relays.
    async fn run(self) {
        let Start {
            id,
            sockets: [a, b],
            path,
            ctl,
            counters,
            ended,
        } = self;
        let sockets = match (BatchSocket::new(a), BatchSocket::new(b)) {
            (Ok(a), Ok(b)) => [a, b],
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(id, error = %e, "relay sockets cannot be registered: call has no media");
                let _ = ended.send((id, "relay ports cannot be bound"));
                return;
            }
        };
        run(id, sockets, path, ctl, counters, ended).await;
    }
}

/// Where calls' tasks run.
enum Spawner {
    /// On the runtime that calls [`RelayIo::apply`].
    Current,
    /// On one of these threads' current-thread runtimes, round-robin.
    Shards(Vec<mpsc::UnboundedSender<Box<Start>>>, ()),
}

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spawner::Current => f.write_str("Current"),
            Spawner::Shards(s, _) => write!(f, "Shards({})", s.len()),
        }
    }
}

impl Spawner {
    /// One thread per core (at most 16), each a current-thread runtime.
    fn shards() -> Spawner {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        let mut senders = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, mut rx) = mpsc::unbounded_channel::<Box<Start>>();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let rt = match rt {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "relay shard runtime cannot start; calls run on the caller's runtime");
                    return Spawner::Current;
                }
            };
            let spawned = std::thread::Builder::new()
                .name(format!("relay-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        while let Some(call) = rx.recv().await {
                            tokio::spawn(call.run());
                        }
                    })
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "relay shard thread cannot start; calls run on the caller's runtime");
                return Spawner::Current;
            }
            senders.push(tx);
        }
        Spawner::Shards(senders, ())
    }

    fn is_sharded(&self) -> bool {
        matches!(self, Spawner::Shards(..))
    }

    /// Starts `call` (on ports `port`, `port + 1`): a port pair always on
    /// the same shard, so a call reusing the pair queues behind the one
    /// that closed it.
    fn spawn(&mut self, port: u16, call: Start) {
        match self {
            Spawner::Current => {
                tokio::spawn(call.run());
            }
            Spawner::Shards(shards, _) => {
                let n = shards.len().max(1);
                let i = usize::from(port / 2) % n;
                if let Some(Err(e)) = shards.get(i).map(|s| s.send(Box::new(call))) {
                    // The shard is gone (shutting down): here instead.
                    tokio::spawn(e.0.run());
                }
            }
        }
    }
}

/// Binds `ip:port`. On a shard the call that last held the port may still
/// be ending on its own thread: then it is given up to 50 ms to let go.
fn bind_soon(ip: IpAddr, port: u16, sharded: bool) -> std::io::Result<std::net::UdpSocket> {
    let give_up = Instant::now() + std::time::Duration::from_millis(50);
    loop {
        match std::net::UdpSocket::bind((ip, port)) {
            Err(e)
                if sharded
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && Instant::now() < give_up =>
            {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            r => return r,
        }
    }
}

/// The address media bridges on this host bind and send from, for a
/// relay bound on `relay`: the same address, or loopback when the relay
/// is bound on the unspecified one.
pub fn bridge_ip(relay: IpAddr) -> IpAddr {
    match relay {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        a => a,
    }
}

/// The relay's sockets, one task per call.
#[derive(Debug)]
pub struct RelayIo {
    ip: IpAddr,
    spawner: Spawner,
    /// By id: the order they are listed in.
    calls: BTreeMap<u64, Running>,
    ended: mpsc::UnboundedSender<Ended>,
    /// Calls whose ports could not be bound.
    pub bind_failures: u64,
    /// Counters of calls already closed, so totals never go backwards.
    closed: [LegStats; 2],
}

impl RelayIo {
    /// A relay binding its ports on `ip`, its calls sharded over one
    /// current-thread runtime per core, and the channel on which calls
    /// that end by themselves are reported.
    pub fn new(ip: IpAddr) -> (RelayIo, mpsc::UnboundedReceiver<Ended>) {
        Self::with(ip, Spawner::shards())
    }

    /// [`RelayIo::new`] with every call's task on the runtime that calls
    /// [`RelayIo::apply`] (tests on a paused clock).
    pub fn in_runtime(ip: IpAddr) -> (RelayIo, mpsc::UnboundedReceiver<Ended>) {
        Self::with(ip, Spawner::Current)
    }

    fn with(ip: IpAddr, spawner: Spawner) -> (RelayIo, mpsc::UnboundedReceiver<Ended>) {
        let (ended, rx) = mpsc::unbounded_channel();
        (
            RelayIo {
                ip,
                spawner,
                calls: BTreeMap::new(),
                ended,
                bind_failures: 0,
                closed: [LegStats::default(); 2],
            },
            rx,
        )
    }

    /// Carries out one command. Must run inside a tokio runtime.
    pub fn apply(&mut self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Open {
                id,
                call_id,
                ports,
                expect,
                timeout,
            } => {
                let ip = self.ip;
                let bound = (|| -> std::io::Result<[std::net::UdpSocket; 2]> {
                    let bind = |p: u16| -> std::io::Result<std::net::UdpSocket> {
                        let s = bind_soon(ip, p, self.spawner.is_sharded())?;
                        s.set_nonblocking(true)?;
                        Ok(s)
                    };
                    Ok([bind(ports[0])?, bind(ports[1])?])
                })();
                let sockets = match bound {
                    Ok(s) => s,
                    Err(e) => {
                        self.bind_failures += 1;
                        tracing::warn!(ports = ?ports, error = %e, "relay ports cannot be bound: call has no media");
                        let _ = self.ended.send((id, "relay ports cannot be bound"));
                        return;
                    }
                };
                let now = now();
                let path = MediaPath::new(
                    now,
                    Leg::new(expect[0], None),
                    Leg::new(expect[1], None),
                    timeout,
                )
                .with_bridge(bridge_ip(ip));
                let (ctl, rx) = mpsc::unbounded_channel();
                let counters: Arc<[LegCounters; 2]> = Arc::default();
                self.spawner.spawn(
                    ports[0],
                    Start {
                        id,
                        sockets,
                        path,
                        ctl: rx,
                        counters: counters.clone(),
                        ended: self.ended.clone(),
                    },
                );
                tracing::debug!(id, %call_id, ports = ?ports, "relay ports open");
                self.calls.insert(
                    id,
                    Running {
                        call_id,
                        ports,
                        ctl,
                        counters,
                    },
                );
            }
            MediaCommand::Sdp { id, side, sdp } => {
                if let Some(c) = self.calls.get(&id) {
                    let _ = c.ctl.send((side, sdp));
                }
            }
            MediaCommand::Close { id, why } => {
                if self.forget(id) {
                    tracing::debug!(id, why, "relay ports closed");
                }
            }
        }
    }

    /// Stops call `id`'s task (its sockets close as it ends). True if it
    /// was running.
    pub fn forget(&mut self, id: u64) -> bool {
        match self.calls.remove(&id) {
            Some(c) => {
                for (i, leg) in c.counters.iter().enumerate() {
                    let s = leg.load();
                    self.closed[i].packets += s.packets;
                    self.closed[i].bytes += s.bytes;
                    self.closed[i].dropped += s.dropped;
                }
                true
            }
            None => false,
        }
    }

    /// Calls being relayed.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is relayed.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Every running call's counters, by id.
    pub fn calls(&self) -> Vec<RelayCall> {
        self.calls.iter().map(|(id, c)| c.figures(*id)).collect()
    }

    /// Totals since start over both sides of every call, closed calls
    /// included.
    pub fn totals(&self) -> LegStats {
        let mut t = LegStats::default();
        let running = self
            .calls
            .values()
            .flat_map(|c| [c.counters[0].load(), c.counters[1].load()]);
        for s in self.closed.iter().copied().chain(running) {
            t.packets += s.packets;
            t.bytes += s.bytes;
            t.dropped += s.dropped;
        }
        t
    }
}

/// One call: reads both ports, forwards as the path says, ends on close
/// (the control sender dropped) or media timeout.
async fn run(
    id: u64,
    sockets: [BatchSocket; 2],
    mut path: MediaPath,
    mut ctl: mpsc::UnboundedReceiver<(Side, SocketAddr)>,
    counters: Arc<[LegCounters; 2]>,
    ended: mpsc::UnboundedSender<Ended>,
) {
    let silence = tokio::time::sleep_until(path.poll_timeout().into());
    tokio::pin!(silence);
    loop {
        let (side, mut guard) = tokio::select! {
            // Control first: an SDP sent before a datagram is applied
            // before the datagram is read, whichever thread this runs on.
            biased;
            c = ctl.recv() => match c {
                Some((side, sdp)) => { path.set_sdp(side, sdp); continue }
                None => return,
            },
            r = sockets[0].readable() => match r { Ok(g) => (Side::Caller, g), Err(_) => continue },
            r = sockets[1].readable() => match r { Ok(g) => (Side::Callee, g), Err(_) => continue },
            _ = &mut silence => {
                if path.handle_timeout(now()) {
                    let _ = ended.send((id, "media timeout"));
                    return;
                }
                silence.as_mut().reset(path.poll_timeout().into());
                continue;
            }
        };
        let (rx, tx) = (&sockets[side.index()], &sockets[side.other().index()]);
        BUFS.with_borrow_mut(|bufs| {
            bufs.resize(RECV_BATCH * MAX_DATAGRAM, 0);
            let mut meta = [RecvMeta::default(); RECV_BATCH];
            for _ in 0..ROUNDS {
                let got = {
                    let mut chunks = bufs.chunks_exact_mut(MAX_DATAGRAM);
                    let mut slices: [IoSliceMut<'_>; RECV_BATCH] =
                        std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
                    rx.recv(&mut guard, &mut slices, &mut meta)
                };
                let (n, full) = match got {
                    Received::Some { n, full } => (n, full),
                    Received::Nothing => break,
                };
                for (m, buf) in meta.iter().zip(bufs.chunks_exact(MAX_DATAGRAM)).take(n) {
                    forward(id, &mut path, side, rx, tx, buf, m, &counters);
                }
                if !full {
                    break;
                }
            }
        });
        counters[side.index()].store(&path.leg(side).stats);
    }
}

/// The datagrams in one received buffer (`buf`, as `meta` says), each
/// through the path and on to the other side if it says so.
#[allow(clippy::too_many_arguments)]
fn forward(
    id: u64,
    path: &mut MediaPath,
    side: Side,
    rx: &BatchSocket,
    tx: &BatchSocket,
    buf: &[u8],
    meta: &RecvMeta,
    counters: &[LegCounters; 2],
) {
    let Some((from, pieces)) = Received::datagrams(buf, meta) else {
        // Possibly truncated: never forward a cut payload.
        path.drop_packet(side);
        return;
    };
    for (start, end) in pieces {
        let latched = path.leg(side).latched;
        let verdict = path.handle_packet(now(), side, from, end - start);
        // Counted before it leaves: whoever sees it arrive sees it
        // counted.
        counters[side.index()].store(&path.leg(side).stats);
        if latched.is_none() {
            if let Some(at) = path.leg(side).latched {
                // From now on only `at` is read on this port: the kernel
                // drops everyone else's datagrams unread (connected before
                // the latching datagram goes on, so no stranger slips in
                // after it).
                if let Err(e) = rx.socket().connect(at) {
                    tracing::debug!(id, %at, error = %e, "relay socket not connected; strangers are dropped here");
                }
            }
        }
        if let Verdict::Forward { dest } = verdict {
            // A full socket buffer drops the datagram, as the network
            // would; RTP does not wait.
            let _ = tx
                .socket()
                .send_to(buf.get(start..end).unwrap_or_default(), dest);
        }
    }
}
