//! The tokio driver: one task owns the [`Pbx`], its UDP socket and its
//! timer, and carries out its media commands (the built-in relay's
//! sockets, [`RelayIo`]) and control datagrams (rtpengine's ng, on a socket
//! of its own). The pairing server pushes the account directory through a
//! `watch` channel; stats, bindings, blocked sources and relayed calls are
//! readable at any time, and an operator's unblock reaches the task
//! through the handle ([`PbxHandle::unblock`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};

use myturn_rt::{drain, Sink};
use myturn_sip::stream::{Frame, Framer, Side, PONG};
use myturn_sip::Transmit;

use crate::core::{Account, Event, Pbx, Stats};
use crate::media::{MediaCallInfo, MediaMode};
use crate::relay_driver::{RelayCall, RelayIo};

/// Largest datagram read (the parser applies the configured limit).
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams handled per wake-up before what they produced is sent.
const RECV_BATCH: usize = 32;
/// Longest the shared copy of the binding list may lag behind.
const SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// Most blocked sources listed in the shared copy (the count is exact).
const BLOCKED_LISTED: usize = 1_000;

/// What the rest of the process asks of the PBX's task.
#[derive(Debug)]
enum Command {
    /// Lift a source's block; the answer says whether it was blocked.
    Unblock(IpAddr, oneshot::Sender<bool>),
}

/// A blocked source, with wall-clock times, as the admin view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedSource {
    /// The source IP.
    pub ip: IpAddr,
    /// `flood` or `auth_failures`.
    pub reason: &'static str,
    /// When the block began.
    pub since: SystemTime,
    /// When it ends unless renewed (a flood that goes on renews it).
    pub until: SystemTime,
    /// Datagrams dropped since, unread.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What the driver shares with the rest of the process.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    stats: Stats,
    binding_count: usize,
    /// (username, contact, source address), refreshed at most every 100 ms.
    bindings: Vec<(String, String, std::net::SocketAddr)>,
    blocked_ips: usize,
    /// The first [`BLOCKED_LISTED`] blocked sources, oldest first.
    blocked: Vec<BlockedSource>,
    /// Sources the flood guard tracks.
    tracked: usize,
    media: MediaSnapshot,
    /// Taken by the task when it starts.
    commands: Option<mpsc::UnboundedReceiver<Command>>,
    /// Where message-framed links (SIP over WebSocket) join the task's
    /// connections, once it runs.
    streams: Option<mpsc::Sender<Conn>>,
    /// The built-in relay as media bridges see it, once it runs.
    bridge: Option<MediaBridge>,
}

/// The built-in relay as a media bridge on this host sees it (the
/// browser's media over WebSocket, bridged onto UDP): where to bind, and
/// which relay ports an SDP may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaBridge {
    /// The address bridges bind and send from; the relay latches from it
    /// and sends to it as an SDP says.
    pub bind: std::net::IpAddr,
    /// The address the relay writes into SDP (a public one that NATs to
    /// this host, perhaps): a bridge sends to `bind` instead.
    pub advertised: std::net::IpAddr,
    /// The relay's ports.
    pub ports: std::ops::RangeInclusive<u16>,
}

impl MediaBridge {
    /// Where a bridge sends for an SDP address `to` of the relay's: `None`
    /// when `to` is not one of the relay's ports (a bridge is no open
    /// proxy).
    pub fn target(&self, to: SocketAddr) -> Option<SocketAddr> {
        let ours = to.ip() == self.advertised || to.ip() == self.bind;
        (ours && self.ports.contains(&to.port())).then(|| SocketAddr::new(self.bind, to.port()))
    }
}

/// The media side, current within 100 ms.
#[derive(Debug, Default, Clone)]
pub struct MediaSnapshot {
    /// `off`, `builtin` or `rtpengine`.
    pub mode: &'static str,
    /// Anchored calls (with rtpengine's counters from its last query).
    pub calls: Vec<MediaCallInfo>,
    /// Calls in the built-in relay, with their counters.
    pub relayed: Vec<RelayCall>,
    /// Built-in relay: forwarded packets, bytes, and dropped packets since
    /// start, both sides of every call.
    pub totals: crate::relay::LegStats,
    /// Built-in relay: port pairs free and in the range.
    pub ports_free: usize,
    /// Built-in relay: port pairs in the range.
    pub ports_capacity: usize,
    /// Built-in relay: calls whose ports could not be bound.
    pub bind_failures: u64,
}

/// The live SIP figures: counters, registered bindings and blocked
/// sources, read together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipFigures {
    /// The counters.
    pub stats: Stats,
    /// Live bindings.
    pub bindings: usize,
    /// Source IPs blocked now.
    pub blocked: usize,
    /// Sources the flood guard tracks now.
    pub tracked: usize,
}

/// A handle on a running PBX.
#[derive(Debug, Clone)]
pub struct PbxHandle {
    /// The address the PBX's SIP socket is bound to.
    pub local: std::net::SocketAddr,
    shared: Arc<Mutex<Shared>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl PbxHandle {
    /// A handle for a PBX listening on `local` (shared before the task
    /// starts, so the rest of the process can hold it from the outset).
    pub fn new(local: std::net::SocketAddr) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            commands: Some(rx),
            ..Shared::default()
        };
        PbxHandle {
            local,
            shared: Arc::new(Mutex::new(shared)),
            commands,
        }
    }

    /// Blocked sources (at most the first 1,000, oldest block first),
    /// current within 100 ms.
    pub fn blocked_sources(&self) -> Vec<BlockedSource> {
        self.shared
            .lock()
            .map(|s| s.blocked.clone())
            .unwrap_or_default()
    }

    /// Lifts `ip`'s block; `true` if it was blocked. `false` too when the
    /// PBX is not running.
    pub async fn unblock(&self, ip: IpAddr) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Unblock(ip, tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Opens a message-framed link for a client at `peer` (SIP over
    /// WebSocket, RFC 7118: each WebSocket message carries one SIP
    /// message). The PBX treats it as it treats a TLS connection: the
    /// client is known by `peer`, and whatever the PBX sends to `peer`
    /// (answers, and requests to a user registered over it) comes out of
    /// [`StreamLink::recv`]. `None` when the PBX is not running.
    pub fn open_stream(&self, peer: SocketAddr) -> Option<StreamLink> {
        let to_pbx = self.shared.lock().ok()?.streams.clone()?;
        let (out_tx, from_pbx) = mpsc::channel::<Vec<u8>>(CONN_QUEUE);
        to_pbx.try_send(Conn::Open(peer, out_tx)).ok()?;
        Some(StreamLink {
            peer,
            to_pbx,
            from_pbx,
        })
    }

    /// The built-in relay as media bridges see it; `None` without one
    /// (direct media, rtpengine) or before the PBX runs.
    pub fn media_bridge(&self) -> Option<MediaBridge> {
        self.shared.lock().ok()?.bridge.clone()
    }

    /// A handle that knows, before the driver's first figures, which media
    /// mode runs and how many relay port pairs there are.
    pub fn with_media(local: std::net::SocketAddr, mode: &MediaMode) -> Self {
        let capacity = match mode {
            MediaMode::Relay { ports, .. } => crate::relay::PortPool::new(ports.clone()).capacity(),
            _ => 0,
        };
        let h = PbxHandle::new(local);
        if let Ok(mut s) = h.shared.lock() {
            s.media.mode = mode.as_str();
            s.media.ports_free = capacity;
            s.media.ports_capacity = capacity;
        }
        h
    }

    /// The counters, live bindings and blocked sources at one instant,
    /// current within 100 ms.
    pub fn figures(&self) -> SipFigures {
        self.shared
            .lock()
            .map(|s| SipFigures {
                stats: s.stats,
                bindings: s.binding_count,
                blocked: s.blocked_ips,
                tracked: s.tracked,
            })
            .unwrap_or_default()
    }

    /// The counters, current within 100 ms.
    pub fn stats(&self) -> Stats {
        self.shared.lock().map(|s| s.stats).unwrap_or_default()
    }

    /// Live bindings, current within 100 ms.
    pub fn binding_count(&self) -> usize {
        self.shared
            .lock()
            .map(|s| s.binding_count)
            .unwrap_or_default()
    }

    /// The binding list, current within 100 ms.
    pub fn bindings(&self) -> Vec<(String, String, std::net::SocketAddr)> {
        self.shared
            .lock()
            .map(|s| s.bindings.clone())
            .unwrap_or_default()
    }

    /// The media side, current within 100 ms.
    pub fn media(&self) -> MediaSnapshot {
        self.shared
            .lock()
            .map(|s| s.media.clone())
            .unwrap_or_default()
    }

    /// Source IPs blocked now, current within 100 ms.
    pub fn blocked_ips(&self) -> usize {
        self.shared
            .lock()
            .map(|s| s.blocked_ips)
            .unwrap_or_default()
    }
}

/// Runs `pbx` on `socket` until `shutdown` flips to true, publishing its
/// figures through `handle`. `accounts` is the directory; every change is
/// applied at once. A built-in relay binds its ports on the address it
/// writes into SDP.
pub fn spawn(
    socket: UdpSocket,
    pbx: Pbx,
    handle: PbxHandle,
    accounts: watch::Receiver<Vec<Account>>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    spawn_with(socket, pbx, handle, accounts, shutdown, None, None)
}

/// SIP over TLS (RFC 3261 §26) beside the UDP socket: a listener and the
/// server configuration its connections are accepted with.
#[derive(Debug)]
pub struct Sips {
    /// The bound TCP listener.
    pub listener: TcpListener,
    /// The TLS server configuration.
    pub config: Arc<rustls::ServerConfig>,
}

/// One client's message-framed link to the PBX (see
/// [`PbxHandle::open_stream`]); dropping it closes the link.
#[derive(Debug)]
pub struct StreamLink {
    peer: SocketAddr,
    to_pbx: mpsc::Sender<Conn>,
    from_pbx: mpsc::Receiver<Vec<u8>>,
}

impl StreamLink {
    /// One SIP message from the client; `false` once the PBX is gone.
    /// Whatever it holds, the PBX parses it as it parses a datagram
    /// (flood guard first, malformed requests answered 400).
    pub async fn send(&self, message: Vec<u8>) -> bool {
        self.to_pbx
            .send(Conn::Message(self.peer, message))
            .await
            .is_ok()
    }

    /// The next message for the client; `None` once the PBX is gone or
    /// dropped the link (it fell too far behind).
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.from_pbx.recv().await
    }
}

impl Drop for StreamLink {
    fn drop(&mut self) {
        let _ = self.to_pbx.try_send(Conn::Closed(self.peer));
    }
}

/// What the TLS connections and the stream links tell the PBX's task.
#[derive(Debug)]
enum Conn {
    Open(SocketAddr, mpsc::Sender<Vec<u8>>),
    Message(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

/// Messages queued to one TLS connection before it counts as stuck.
const CONN_QUEUE: usize = 256;
/// How long a TLS client gets for its handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepts TLS connections until `shutdown`; each connection's messages
/// and its end go to `conns`. The connection is known by the client's
/// address (ip:port), as a UDP source would be, so the core treats both
/// transports alike, and whatever the core sends to that address goes
/// down the connection (RFC 5923: requests to a client reuse its
/// connection, which is what reaches it behind a NAT).
async fn accept_tls(
    sips: Sips,
    max_message: usize,
    conns: mpsc::Sender<Conn>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(sips.config);
    loop {
        let (tcp, peer) = tokio::select! {
            r = sips.listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP over TLS: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, conns) = (acceptor.clone(), conns.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "SIP over TLS: handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "SIP over TLS: handshake timed out");
                    return;
                }
            };
            let (mut reader, mut writer) = tokio::io::split(stream);
            let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(CONN_QUEUE);
            if conns.send(Conn::Open(peer, out_tx.clone())).await.is_err() {
                return;
            }
            let write = tokio::spawn(async move {
                while let Some(bytes) = out_rx.recv().await {
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
            let mut framer = Framer::new(Side::Server, max_message);
            let mut buf = vec![0u8; 16 * 1024];
            'read: loop {
                let n = match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                framer.push(buf.get(..n).unwrap_or_default());
                loop {
                    match framer.next_frame() {
                        Ok(Some(Frame::Message(m))) => {
                            if conns.send(Conn::Message(peer, m)).await.is_err() {
                                break 'read;
                            }
                        }
                        // RFC 5626 §4.4.1: a ping gets a pong.
                        Ok(Some(Frame::Ping)) => {
                            let _ = out_tx.try_send(PONG.to_vec());
                        }
                        Ok(Some(Frame::Pong)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            tracing::info!(%peer, error = %e, "SIP over TLS: unreadable stream, connection closed");
                            break 'read;
                        }
                    }
                }
            }
            write.abort();
            let _ = conns.send(Conn::Closed(peer)).await;
        });
    }
}

/// [`spawn`], with the built-in relay's ports bound on `relay_bind` (a
/// wildcard, when the address in SDP is a public one that NATs to this
/// host) instead of the address it advertises.
pub fn spawn_with(
    socket: UdpSocket,
    mut pbx: Pbx,
    handle: PbxHandle,
    mut accounts: watch::Receiver<Vec<Account>>,
    mut shutdown: watch::Receiver<bool>,
    relay_bind: Option<std::net::IpAddr>,
    sips: Option<Sips>,
) -> tokio::task::JoinHandle<()> {
    let shared = handle.shared;
    let mut commands = shared.lock().ok().and_then(|mut s| s.commands.take());
    pbx.set_accounts(accounts.borrow_and_update().clone());
    let mode = pbx.config().media.clone();
    let (conn_tx, mut conn_rx) = mpsc::channel::<Conn>(1024);
    if let Some(s) = sips {
        tokio::spawn(accept_tls(
            s,
            pbx.config().max_message_size,
            conn_tx.clone(),
            shutdown.clone(),
        ));
    }
    if let Ok(mut s) = shared.lock() {
        s.streams = Some(conn_tx);
        if let MediaMode::Relay { addr, ports } = &mode {
            s.bridge = Some(MediaBridge {
                bind: crate::relay_driver::bridge_ip(relay_bind.unwrap_or(*addr)),
                advertised: *addr,
                ports: ports.clone(),
            });
        }
    }
    tokio::spawn(async move {
        let mut tls_conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
        let mut told = Told::default();
        let (mut relay, mut relay_ended) = match &mode {
            MediaMode::Relay { addr, .. } => {
                let (r, rx) = RelayIo::new(relay_bind.unwrap_or(*addr));
                (Some(r), Some(rx))
            }
            _ => (None, None),
        };
        let control = match &mode {
            MediaMode::Rtpengine { control } => {
                let any: std::net::SocketAddr = if control.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                match UdpSocket::bind(any).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open the rtpengine control socket");
                        None
                    }
                }
            }
            _ => None,
        };
        let mut control_buf = vec![0u8; MAX_DATAGRAM];
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut copied_generation = u64::MAX;
        let mut copied_at = Instant::now() - SNAPSHOT_EVERY;
        let (mut copied_blocks, mut published_blocked) = (0u64, false);
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            // Figures first: whoever reacts to what is sent next must see
            // them already.
            let now = Instant::now();
            // The binding list is copied only when it changed, and at most
            // every SNAPSHOT_EVERY (it can hold 100,000 entries); the
            // counters are copied every time.
            let due = now.duration_since(copied_at) >= SNAPSHOT_EVERY;
            if let Ok(mut s) = shared.lock() {
                s.stats = pbx.stats();
                s.binding_count = pbx.binding_count();
                if due {
                    if pbx.bindings_generation() != copied_generation {
                        s.bindings = pbx.bindings();
                        copied_generation = pbx.bindings_generation();
                    }
                    publish_blocked(&mut s, &pbx, now);
                    copied_blocks = s.stats.blocks + s.stats.flood_blocks;
                    published_blocked = s.blocked_ips > 0;
                    let (free, cap) = pbx.media_ports();
                    s.media = MediaSnapshot {
                        mode: mode.as_str(),
                        calls: pbx.media_calls(),
                        relayed: relay.as_ref().map(RelayIo::calls).unwrap_or_default(),
                        totals: relay.as_ref().map(RelayIo::totals).unwrap_or_default(),
                        ports_free: free,
                        ports_capacity: cap,
                        bind_failures: relay.as_ref().map_or(0, |r| r.bind_failures),
                    };
                    copied_at = now;
                }
            }
            let mut out = SipOut {
                socket: &socket,
                tls: &tls_conns,
            };
            drain(|| pbx.poll_transmit(), &mut out).await;
            while let Some(cmd) = pbx.poll_media() {
                if let Some(r) = relay.as_mut() {
                    r.apply(cmd);
                }
            }
            drain(|| pbx.poll_control(), &mut ControlOut(control.as_ref())).await;
            while let Some(ev) = pbx.poll_event() {
                told.log(&ev, &tls_conns);
            }
            // Wake for a pending snapshot too, so the copy never lags more
            // than SNAPSHOT_EVERY even when the line goes quiet.
            // Relayed calls' counters move without any SIP traffic: keep
            // the copy fresh while there are some.
            // A new block, or blocks listed (they lapse without traffic),
            // too.
            let st = pbx.stats();
            let pending = pbx.bindings_generation() != copied_generation
                || relay.as_ref().is_some_and(|r| !r.is_empty())
                || pbx.anchored_calls() > 0
                || st.blocks + st.flood_blocks != copied_blocks
                || published_blocked;
            let deadline: Option<Instant> = [
                pbx.poll_timeout(),
                pending.then(|| copied_at + SNAPSHOT_EVERY),
            ]
            .into_iter()
            .flatten()
            .min();
            // One timer, moved only when the deadline does.
            if deadline != armed {
                if let Some(d) = deadline {
                    timer.as_mut().reset(d.into());
                }
                armed = deadline;
            }
            tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let now = Instant::now();
                        pbx.handle_datagram(now, from, buf.get(..n).unwrap_or(&[]));
                        // What else is queued, before answering: one pass
                        // of this loop (figures, timer, select) per batch,
                        // not per datagram.
                        for _ in 1..RECV_BATCH {
                            match socket.try_recv_from(&mut buf) {
                                Ok((n, from)) => pbx.handle_datagram(now, from, buf.get(..n).unwrap_or(&[])),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "SIP socket receive error"),
                },
                _ = &mut timer, if deadline.is_some() => pbx.handle_timeout(Instant::now()),
                Some(c) = conn_rx.recv() => match c {
                    Conn::Open(peer, tx) => { tls_conns.insert(peer, tx); }
                    Conn::Message(peer, m) => pbx.handle_datagram(Instant::now(), peer, &m),
                    Conn::Closed(peer) => { tls_conns.remove(&peer); }
                },
                Some((id, why)) = recv_ended(&mut relay_ended) => {
                    if let Some(r) = relay.as_mut() {
                        r.forget(id);
                    }
                    pbx.handle_media_ended(id, why);
                }
                r = recv_control(control.as_ref(), &mut control_buf) => match r {
                    Ok(n) => pbx.handle_control(Instant::now(), control_buf.get(..n).unwrap_or(&[])),
                    Err(e) => tracing::debug!(error = %e, "rtpengine control receive error"),
                },
                Some(c) = recv_command(&mut commands) => match c {
                    Command::Unblock(ip, reply) => {
                        let now = Instant::now();
                        let _ = reply.send(pbx.unblock(now, ip));
                        if let Ok(mut s) = shared.lock() {
                            publish_blocked(&mut s, &pbx, now);
                        }
                    }
                },
                r = accounts.changed() => match r {
                    Ok(()) => {
                        let a = accounts.borrow_and_update().clone();
                        pbx.set_accounts(a);
                    }
                    Err(_) => return,
                },
                _ = shutdown.wait_for(|&s| s) => return,
            }
        }
    })
}

/// Where SIP goes: down a client's TLS connection when it came on one,
/// else out of the UDP socket.
struct SipOut<'a> {
    socket: &'a UdpSocket,
    tls: &'a HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
}

impl Sink<Transmit> for SipOut<'_> {
    async fn send(&mut self, t: Transmit) {
        // A client on a TLS connection: down that connection.
        if let Some(c) = self.tls.get(&t.dest) {
            if c.try_send(t.payload).is_err() {
                tracing::debug!(dest = %t.dest, "SIP over TLS: connection stuck, message dropped");
            }
            return;
        }
        // Straight to the socket; wait for room only when it is full.
        let sent = match self.socket.try_send_to(&t.payload, t.dest) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.socket.send_to(&t.payload, t.dest).await
            }
            other => other,
        };
        if let Err(e) = sent {
            tracing::debug!(dest = %t.dest, error = %e, "SIP send failed");
        }
    }
}

/// rtpengine's control socket, when there is one.
struct ControlOut<'a>(Option<&'a UdpSocket>);

impl Sink<Transmit> for ControlOut<'_> {
    async fn send(&mut self, t: Transmit) {
        if let Some(c) = self.0 {
            if let Err(e) = c.send_to(&t.payload, t.dest).await {
                tracing::warn!(dest = %t.dest, error = %e, "rtpengine control send failed");
            }
        }
    }
}

/// The bindings already logged, so a refresh (every half lifetime) is a
/// debug line and only a new binding or a new Contact an info one.
#[derive(Default)]
struct Told(HashMap<String, (String, SocketAddr)>);

impl Told {
    /// Logs `ev` at the level an operator follows a session by:
    /// registrations (with the Contact and the transport it came over) and
    /// removals at info, refreshes at debug.
    fn log<T>(&mut self, ev: &Event, tls: &HashMap<SocketAddr, T>) {
        match ev {
            Event::Registered {
                username,
                contact,
                source,
                expires,
            } => {
                let transport = if tls.contains_key(source) {
                    "tls"
                } else {
                    "udp"
                };
                let now = (contact.clone(), *source);
                if self.0.get(username) == Some(&now) {
                    tracing::debug!(user = %username, %contact, %source, transport, expires, "SIP registration refreshed");
                } else {
                    tracing::info!(user = %username, %contact, %source, transport, expires, "SIP registered");
                    self.0.insert(username.clone(), now);
                }
            }
            Event::Unregistered { username, why } => {
                self.0.remove(username);
                tracing::info!(user = %username, why, "SIP binding removed")
            }
            other => log_event(other),
        }
    }
}

fn log_event(ev: &Event) {
    match ev {
        Event::Registered { .. } | Event::Unregistered { .. } => {}
        Event::Blocked { ip, failures } => {
            tracing::warn!(%ip, failures, "SIP source blocked")
        }
        Event::Flooding { ip } => tracing::warn!(%ip, "SIP source blocked: flooding"),
        Event::CallRouted { from, to } => tracing::debug!(%from, %to, "SIP call routed"),
    }
}

/// The blocked sources into the shared copy, with wall-clock times.
fn publish_blocked(s: &mut Shared, pbx: &Pbx, now: Instant) {
    let wall = SystemTime::now();
    let at = |t: Instant| match t.checked_duration_since(now) {
        Some(ahead) => wall + ahead,
        None => wall - now.duration_since(t),
    };
    let all = pbx.blocked(now);
    s.blocked_ips = all.len();
    s.tracked = pbx.tracked_sources();
    s.blocked = all
        .into_iter()
        .take(BLOCKED_LISTED)
        .map(|b| BlockedSource {
            ip: b.ip,
            reason: b.reason.as_str(),
            since: at(b.since),
            until: at(b.until),
            packets: b.packets,
            bytes: b.bytes,
        })
        .collect();
}

async fn recv_command(rx: &mut Option<mpsc::UnboundedReceiver<Command>>) -> Option<Command> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_ended(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<crate::relay_driver::Ended>>,
) -> Option<crate::relay_driver::Ended> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_control(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<usize> {
    match socket {
        Some(s) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}
