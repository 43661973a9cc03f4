//! The tokio driver: one task owns a [`UserAgent`], its link to the proxy
//! (a UDP socket, or a TLS connection: [`start_tls`]) and its timer; the
//! application talks to it through a [`SipHandle`] and reads [`Event`]s
//! from [`SipHandle::events`].
//!
//! Over TLS the one connection carries everything (RFC 5923: the proxy
//! sends our calls down it too). It is kept alive with RFC 5626 pings
//! (CRLFCRLF every 25 s, answered with CRLF); a connection that
//! breaks is made again after a second, and the binding registered again
//! on it.

use std::net::SocketAddr;
use std::time::Duration;

use web_time::Instant;

use myturn_rt::{drain, sleep_until, Sink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::stream::{Frame, Framer, Side, PING};
use crate::ua::{CallHandle, Config, Event, Stats, UaError, UserAgent};
use crate::Transmit;

/// How often a TLS connection to the proxy is pinged (RFC 5626 §4.4.1
/// suggests 95–120 s for TCP; NATs and load balancers on the way forget
/// idle connections much sooner, so this stays under 30 s).
pub(crate) const PING_EVERY: Duration = Duration::from_secs(25);
/// Pause before making a broken TLS connection again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Largest datagram read (UDP's limit; the parser applies its own).
const MAX_DATAGRAM: usize = 65_535;

type Reply<T> = oneshot::Sender<T>;

enum Command {
    Register,
    Unregister,
    Invite(String, String, Reply<Result<CallHandle, UaError>>),
    Answer(CallHandle, String, Reply<Result<(), UaError>>),
    Reject(CallHandle, u16, Reply<Result<(), UaError>>),
    Hangup(CallHandle, Reply<Result<(), UaError>>),
    SipCallId(CallHandle, Reply<Option<String>>),
    Stats(Reply<Stats>),
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The driver task has stopped.
    #[error("the SIP agent has stopped")]
    Closed,
    /// The agent refused the command.
    #[error(transparent)]
    Agent(#[from] UaError),
}

/// The application's side of a running user agent.
#[derive(Debug)]
pub struct SipHandle {
    cmds: mpsc::Sender<Command>,
    /// Everything the agent reports, in order.
    pub events: mpsc::UnboundedReceiver<Event>,
    local: SocketAddr,
}

impl SipHandle {
    /// The local UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn cmd<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(make(tx))
            .await
            .map_err(|_| DriverError::Closed)?;
        rx.await.map_err(|_| DriverError::Closed)
    }

    /// Starts registering; [`Event::Registered`] or
    /// [`Event::RegistrationFailed`] follows.
    pub async fn register(&self) -> Result<(), DriverError> {
        self.cmds
            .send(Command::Register)
            .await
            .map_err(|_| DriverError::Closed)
    }

    /// Removes the binding; [`Event::Unregistered`] follows.
    pub async fn unregister(&self) -> Result<(), DriverError> {
        self.cmds
            .send(Command::Unregister)
            .await
            .map_err(|_| DriverError::Closed)
    }

    /// Calls an extension or `sip:` URI with the SDP offer `sdp`.
    pub async fn invite(&self, target: &str, sdp: &str) -> Result<CallHandle, DriverError> {
        let (t, s) = (target.to_owned(), sdp.to_owned());
        Ok(self.cmd(|r| Command::Invite(t, s, r)).await??)
    }

    /// Answers incoming call `call` with 200 OK carrying `sdp`.
    pub async fn answer(&self, call: CallHandle, sdp: &str) -> Result<(), DriverError> {
        let s = sdp.to_owned();
        Ok(self.cmd(|r| Command::Answer(call, s, r)).await??)
    }

    /// Refuses incoming call `call` with `code` (486 Busy Here, 603 Decline, …).
    pub async fn reject(&self, call: CallHandle, code: u16) -> Result<(), DriverError> {
        Ok(self.cmd(|r| Command::Reject(call, code, r)).await??)
    }

    /// Ends `call` whatever its state (CANCEL, 603 or BYE).
    pub async fn hangup(&self, call: CallHandle) -> Result<(), DriverError> {
        Ok(self.cmd(|r| Command::Hangup(call, r)).await??)
    }

    /// The SIP Call-ID of `call`.
    pub async fn sip_call_id(&self, call: CallHandle) -> Result<Option<String>, DriverError> {
        self.cmd(|r| Command::SipCallId(call, r)).await
    }

    /// The agent's counters.
    pub async fn stats(&self) -> Result<Stats, DriverError> {
        self.cmd(Command::Stats).await
    }

    /// Waits for the next event matching `f`, up to `timeout`; other events
    /// are returned in order through `skipped`.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        skipped: &mut Vec<Event>,
        mut f: impl FnMut(&Event) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            if let Some(t) = f(&ev) {
                return Some(t);
            }
            skipped.push(ev);
        }
    }

    /// Unregisters (waiting up to `timeout` for the answer) and stops the
    /// agent. Calls in progress are not hung up: do that first.
    pub async fn shutdown(mut self, timeout: Duration) -> bool {
        if self.unregister().await.is_err() {
            return false;
        }
        let mut skipped = Vec::new();
        self.wait_for(timeout, &mut skipped, |e| {
            matches!(e, Event::Unregistered).then_some(())
        })
        .await
        .is_some()
    }
}

/// Starts an agent on `socket`.
pub fn start(
    socket: UdpSocket,
    cfg: Config,
    rng: Box<dyn rand_core::RngCore + Send>,
) -> std::io::Result<SipHandle> {
    let local = socket.local_addr()?;
    Ok(spawn(Link::Udp(socket), local, cfg, rng))
}

/// Where and how to reach the proxy over TLS.
#[derive(Clone)]
pub struct TlsTarget {
    /// The proxy's address.
    pub proxy: SocketAddr,
    /// The name the proxy's certificate must carry.
    pub name: rustls::pki_types::ServerName<'static>,
    /// The TLS client set up to verify the proxy.
    pub connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("proxy", &self.proxy)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect_tls(target: &TlsTarget) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(target.proxy).await?;
    tcp.set_nodelay(true)?;
    tokio::time::timeout(
        Duration::from_secs(10),
        target.connector.connect(target.name.clone(), tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Starts an agent over a TLS connection to `target` (made now, so a
/// refused certificate is an error here). `cfg.transport` must be
/// [`crate::ua::Transport::Tls`]; `cfg.local` is set to the connection's
/// local address.
pub async fn start_tls(
    target: TlsTarget,
    mut cfg: Config,
    rng: Box<dyn rand_core::RngCore + Send>,
) -> std::io::Result<SipHandle> {
    let stream = connect_tls(&target).await?;
    let local = stream.get_ref().0.local_addr()?;
    cfg.local = local;
    cfg.transport = crate::ua::Transport::Tls;
    let link = Link::Tls(TlsLink::new(target, stream));
    Ok(spawn(link, local, cfg, rng))
}

fn spawn(
    link: Link,
    local: SocketAddr,
    cfg: Config,
    rng: Box<dyn rand_core::RngCore + Send>,
) -> SipHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let ua = UserAgent::new(cfg, rng);
    tokio::spawn(run(link, ua, cmd_rx, ev_tx));
    SipHandle {
        cmds: cmd_tx,
        events: ev_rx,
        local,
    }
}

/// A TLS connection's reading side runs in a task of its own; whole
/// messages come out of it.
struct TlsLink {
    target: TlsTarget,
    writer: Option<tokio::io::WriteHalf<TlsStream>>,
    frames: mpsc::Receiver<Vec<u8>>,
    ping_at: tokio::time::Instant,
    reconnect_at: Option<tokio::time::Instant>,
}

impl TlsLink {
    fn new(target: TlsTarget, stream: TlsStream) -> TlsLink {
        let (frames, writer) = Self::split(stream);
        TlsLink {
            target,
            writer: Some(writer),
            frames,
            ping_at: tokio::time::Instant::now() + PING_EVERY,
            reconnect_at: None,
        }
    }

    fn split(stream: TlsStream) -> (mpsc::Receiver<Vec<u8>>, tokio::io::WriteHalf<TlsStream>) {
        let (mut reader, writer) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut framer = Framer::new(Side::Client, crate::msg::DEFAULT_MAX_SIZE);
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                framer.push(buf.get(..n).unwrap_or_default());
                loop {
                    match framer.next_frame() {
                        Ok(Some(Frame::Message(m))) => {
                            if tx.send(m).await.is_err() {
                                return;
                            }
                        }
                        Ok(Some(Frame::Pong | Frame::Ping)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "SIP over TLS: unreadable stream from the proxy; reconnecting");
                            return;
                        }
                    }
                }
            }
        });
        (rx, writer)
    }

    async fn write(&mut self, bytes: &[u8]) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.write_all(bytes).await {
                tracing::info!(error = %e, "SIP over TLS: connection to the proxy lost");
                self.lost();
            }
        }
    }

    fn lost(&mut self) {
        self.writer = None;
        self.reconnect_at = Some(tokio::time::Instant::now() + RECONNECT_AFTER);
    }
}

/// How the agent reaches the proxy.
enum Link {
    Udp(UdpSocket),
    Tls(TlsLink),
}

/// What the link brought.
enum Incoming {
    Message(SocketAddr, Vec<u8>),
    /// A TLS connection to the proxy was made again.
    Reconnected,
    Nothing,
}

impl Sink<Transmit> for Link {
    async fn send(&mut self, t: Transmit) {
        Link::send(self, t.dest, &t.payload).await;
    }
}

impl Link {
    async fn send(&mut self, dest: SocketAddr, payload: &[u8]) {
        match self {
            Link::Udp(s) => {
                if let Err(e) = s.send_to(payload, dest).await {
                    tracing::debug!(%dest, error = %e, "SIP send failed");
                }
            }
            // Everything goes to the proxy, down the one connection.
            Link::Tls(t) => t.write(payload).await,
        }
    }

    async fn recv(&mut self, buf: &mut [u8]) -> Incoming {
        match self {
            Link::Udp(s) => match s.recv_from(buf).await {
                Ok((n, from)) => Incoming::Message(from, buf.get(..n).unwrap_or_default().to_vec()),
                Err(e) => {
                    tracing::debug!(error = %e, "SIP socket receive error");
                    Incoming::Nothing
                }
            },
            Link::Tls(t) => {
                let reconnect = async {
                    match t.reconnect_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    m = t.frames.recv(), if t.writer.is_some() => match m {
                        Some(m) => Incoming::Message(t.target.proxy, m),
                        None => {
                            tracing::info!(proxy = %t.target.proxy, "SIP over TLS: the proxy closed the connection");
                            t.lost();
                            Incoming::Nothing
                        }
                    },
                    _ = tokio::time::sleep_until(t.ping_at), if t.writer.is_some() => {
                        t.ping_at = tokio::time::Instant::now() + PING_EVERY;
                        t.write(PING).await;
                        Incoming::Nothing
                    }
                    _ = reconnect => match connect_tls(&t.target).await {
                        Ok(stream) => {
                            tracing::info!(proxy = %t.target.proxy, "SIP over TLS: connected again");
                            let (frames, writer) = TlsLink::split(stream);
                            t.frames = frames;
                            t.writer = Some(writer);
                            t.reconnect_at = None;
                            t.ping_at = tokio::time::Instant::now() + PING_EVERY;
                            Incoming::Reconnected
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "SIP over TLS: reconnect failed");
                            t.reconnect_at = Some(tokio::time::Instant::now() + RECONNECT_AFTER);
                            Incoming::Nothing
                        }
                    },
                }
            }
        }
    }
}

async fn run(
    mut link: Link,
    mut ua: UserAgent,
    mut cmds: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        drain(|| ua.poll_transmit(), &mut link).await;
        while let Some(ev) = ua.poll_event() {
            match &ev {
                Event::PublicAddressChanged { from, to } => tracing::info!(
                    %from, %to,
                    "the PBX sees us at a new public address (NAT rebinding): registering it"
                ),
                _ => tracing::debug!(event = ?ev, "SIP event"),
            }
            let _ = events.send(ev);
        }
        let deadline = ua.poll_timeout();
        tokio::select! {
            r = link.recv(&mut buf) => match r {
                Incoming::Message(from, m) => ua.handle_datagram(Instant::now(), from, &m),
                // The binding lived on the old connection: register anew.
                Incoming::Reconnected if ua.is_registered() => ua.register(Instant::now()),
                Incoming::Reconnected | Incoming::Nothing => {}
            },
            _ = sleep_until(deadline) => ua.handle_timeout(Instant::now()),
            cmd = cmds.recv() => {
                let now = Instant::now();
                match cmd {
                    Some(Command::Register) => ua.register(now),
                    Some(Command::Unregister) => ua.unregister(now),
                    Some(Command::Invite(t, s, r)) => { let _ = r.send(ua.invite(now, &t, &s)); }
                    Some(Command::Answer(c, s, r)) => { let _ = r.send(ua.answer(now, c, &s)); }
                    Some(Command::Reject(c, code, r)) => {
                        let reason = match code { 486 => "Busy Here", 603 => "Decline", _ => "Rejected" };
                        let _ = r.send(ua.reject(now, c, code, reason));
                    }
                    Some(Command::Hangup(c, r)) => { let _ = r.send(ua.hangup(now, c)); }
                    Some(Command::SipCallId(c, r)) => { let _ = r.send(ua.sip_call_id(c).map(str::to_owned)); }
                    Some(Command::Stats(r)) => { let _ = r.send(ua.stats()); }
                    None => {
                        // Flush what the last commands produced, then stop.
                        drain(|| ua.poll_transmit(), &mut link).await;
                        return;
                    }
                }
            }
        }
    }
}
