//! The built-in relay's I/O: one tokio task per relayed call owns the
//! call's two UDP sockets and its [`MediaPath`], and forwards datagrams
//! between them as the path decides. [`RelayIo::apply`] carries out the
//! PBX core's [`MediaCommand`]s; a call that ends on its own (media
//! timeout, ports that could not be bound) is reported on the channel
//! [`RelayIo::new`] returns, for [`crate::core::Pbx::handle_media_ended`].
//!
//! Unallocated ports have no socket at all, so a flood aimed at them never
//! reaches this process.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Now, as tokio's clock sees it (paused in tests, the real one otherwise).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::media::MediaCommand;
use crate::relay::{Leg, LegStats, MediaPath, Side, Verdict};

/// Largest datagram relayed. A datagram that fills the buffer may have
/// been cut short, so it is dropped, never forwarded truncated.
const MAX_DATAGRAM: usize = 8192;
/// Datagrams read from one socket per wake-up before the task yields.
const BATCH: usize = 64;

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

/// The relay's sockets, one task per call.
#[derive(Debug)]
pub struct RelayIo {
    ip: IpAddr,
    /// By id: the order they are listed in.
    calls: BTreeMap<u64, Running>,
    ended: mpsc::UnboundedSender<Ended>,
    /// Calls whose ports could not be bound.
    pub bind_failures: u64,
    /// Counters of calls already closed, so totals never go backwards.
    closed: [LegStats; 2],
}

impl RelayIo {
    /// A relay binding its ports on `ip`, and the channel on which calls
    /// that end by themselves are reported.
    pub fn new(ip: IpAddr) -> (RelayIo, mpsc::UnboundedReceiver<Ended>) {
        let (ended, rx) = mpsc::unbounded_channel();
        (
            RelayIo {
                ip,
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
                let bound = (|| -> std::io::Result<[UdpSocket; 2]> {
                    let bind = |p: u16| -> std::io::Result<UdpSocket> {
                        let s = std::net::UdpSocket::bind((self.ip, p))?;
                        s.set_nonblocking(true)?;
                        UdpSocket::from_std(s)
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
                );
                let (ctl, rx) = mpsc::unbounded_channel();
                let counters: Arc<[LegCounters; 2]> = Arc::default();
                tokio::spawn(run(
                    id,
                    sockets,
                    path,
                    rx,
                    counters.clone(),
                    self.ended.clone(),
                ));
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
    sockets: [UdpSocket; 2],
    mut path: MediaPath,
    mut ctl: mpsc::UnboundedReceiver<(Side, SocketAddr)>,
    counters: Arc<[LegCounters; 2]>,
    ended: mpsc::UnboundedSender<Ended>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let silence = tokio::time::sleep_until(path.poll_timeout().into());
    tokio::pin!(silence);
    loop {
        let side = tokio::select! {
            r = sockets[0].readable() => match r { Ok(()) => Side::Caller, Err(_) => continue },
            r = sockets[1].readable() => match r { Ok(()) => Side::Callee, Err(_) => continue },
            c = ctl.recv() => match c {
                Some((side, sdp)) => { path.set_sdp(side, sdp); continue }
                None => return,
            },
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
        for _ in 0..BATCH {
            let (n, from) = match rx.try_recv_from(&mut buf) {
                Ok(r) => r,
                Err(_) => break, // WouldBlock, or an ICMP error report
            };
            if n == buf.len() {
                // Possibly truncated: never forward a cut payload.
                let _ = from;
                path.drop_packet(side);
                continue;
            }
            if let Verdict::Forward { dest } = path.handle_packet(now(), side, from, n) {
                // A full socket buffer drops the datagram, as the network
                // would; RTP does not wait.
                let _ = tx.try_send_to(buf.get(..n).unwrap_or_default(), dest);
            }
        }
        counters[side.index()].store(&path.leg(side).stats);
    }
}
