//! The tokio driver: one task owns a [`UserAgent`], its UDP socket and its
//! timer; the application talks to it through a [`SipHandle`] and reads
//! [`Event`]s from [`SipHandle::events`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::ua::{CallId, Config, Event, Stats, UaError, UserAgent};

/// Largest datagram read (UDP's limit; the parser applies its own).
const MAX_DATAGRAM: usize = 65_535;

type Reply<T> = oneshot::Sender<T>;

enum Command {
    Register,
    Unregister,
    Invite(String, String, Reply<Result<CallId, UaError>>),
    Answer(CallId, String, Reply<Result<(), UaError>>),
    Reject(CallId, u16, Reply<Result<(), UaError>>),
    Hangup(CallId, Reply<Result<(), UaError>>),
    SipCallId(CallId, Reply<Option<String>>),
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
    pub async fn invite(&self, target: &str, sdp: &str) -> Result<CallId, DriverError> {
        let (t, s) = (target.to_owned(), sdp.to_owned());
        Ok(self.cmd(|r| Command::Invite(t, s, r)).await??)
    }

    pub async fn answer(&self, call: CallId, sdp: &str) -> Result<(), DriverError> {
        let s = sdp.to_owned();
        Ok(self.cmd(|r| Command::Answer(call, s, r)).await??)
    }

    pub async fn reject(&self, call: CallId, code: u16) -> Result<(), DriverError> {
        Ok(self.cmd(|r| Command::Reject(call, code, r)).await??)
    }

    pub async fn hangup(&self, call: CallId) -> Result<(), DriverError> {
        Ok(self.cmd(|r| Command::Hangup(call, r)).await??)
    }

    pub async fn sip_call_id(&self, call: CallId) -> Result<Option<String>, DriverError> {
        self.cmd(|r| Command::SipCallId(call, r)).await
    }

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
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let ua = UserAgent::new(cfg, rng);
    tokio::spawn(run(socket, ua, cmd_rx, ev_tx));
    Ok(SipHandle {
        cmds: cmd_tx,
        events: ev_rx,
        local,
    })
}

async fn run(
    socket: UdpSocket,
    mut ua: UserAgent,
    mut cmds: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some(t) = ua.poll_transmit() {
            if let Err(e) = socket.send_to(&t.payload, t.dest).await {
                tracing::debug!(dest = %t.dest, error = %e, "SIP send failed");
            }
        }
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
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => ua.handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or(&[])),
                Err(e) => tracing::debug!(error = %e, "SIP socket receive error"),
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
                        while let Some(t) = ua.poll_transmit() {
                            let _ = socket.send_to(&t.payload, t.dest).await;
                        }
                        return;
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
