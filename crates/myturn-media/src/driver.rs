//! The tokio driver: one task owns a [`Session`], its UDP socket and its
//! timer; the application talks to it through a [`MediaHandle`].
//!
//! Only datagrams from the peer's address (the one SDP gave: the PBX's
//! relay port, or the peer itself with direct media) reach the session;
//! anything else is dropped and counted. A re-INVITE that moves the media
//! changes that address ([`MediaHandle::retarget`]).

use std::net::SocketAddr;
use web_time::Instant;

use myturn_rt::{drain, sleep_until, Sink};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::session::{Config, Event, Session, Stats};

/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// Events queued for the application before the oldest audio is dropped.
const EVENT_QUEUE: usize = 512;

enum Command {
    Audio(Vec<u8>),
    Retarget(SocketAddr, u8, Option<u8>),
    Text(String),
    Mute(bool),
}

/// Driver-level counters, next to the session's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// The session's counters.
    pub session: Stats,
    /// Datagrams from addresses other than the peer's.
    pub foreign: u64,
    /// Events dropped because the application did not read them.
    pub events_dropped: u64,
    /// Send errors from the socket.
    pub send_errors: u64,
    /// Frames not sent because the microphone is muted.
    pub muted_frames: u64,
}

/// The application's side of a running media session.
#[derive(Debug)]
pub struct MediaHandle {
    cmds: mpsc::Sender<Command>,
    /// Events: `Established`, audio frames, text, `Failed`.
    pub events: mpsc::Receiver<Event>,
    stats: watch::Receiver<DriverStats>,
    local: SocketAddr,
}

/// Why a command could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the media session has ended")]
pub struct Closed;

impl MediaHandle {
    /// The local socket address (for the SDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends one 20 ms PCM16 frame (dropped silently before the secure
    /// channel is up: nothing is ever sent in clear).
    pub async fn send_audio(&self, pcm: Vec<u8>) -> Result<(), Closed> {
        self.cmds
            .send(Command::Audio(pcm))
            .await
            .map_err(|_| Closed)
    }

    /// Mutes or unmutes the microphone: while muted, audio frames are not
    /// sent at all (no packets, no sequence numbers used).
    pub async fn set_muted(&self, muted: bool) -> Result<(), Closed> {
        self.cmds
            .send(Command::Mute(muted))
            .await
            .map_err(|_| Closed)
    }

    /// Moves the media to a new peer address and payload types (L16's,
    /// and Opus's if the new SDP lists it), as a re-INVITE or UPDATE with
    /// new SDP asks (Asterisk moves media that way). Datagrams from the
    /// old address are then dropped as foreign.
    pub async fn retarget(
        &self,
        peer: SocketAddr,
        payload_type: u8,
        opus: Option<u8>,
    ) -> Result<(), Closed> {
        self.cmds
            .send(Command::Retarget(peer, payload_type, opus))
            .await
            .map_err(|_| Closed)
    }

    /// Sends one chat message.
    pub async fn send_text(&self, text: String) -> Result<(), Closed> {
        self.cmds
            .send(Command::Text(text))
            .await
            .map_err(|_| Closed)
    }

    /// Current counters.
    pub fn stats(&self) -> DriverStats {
        self.stats.borrow().clone()
    }
}

/// Starts a session on `socket`, talking to `peer`.
pub fn start(
    socket: UdpSocket,
    peer: SocketAddr,
    cfg: Config,
    rng: Box<dyn rand_core::CryptoRngCore + Send>,
) -> std::io::Result<MediaHandle> {
    start_session(socket, peer, Session::new(cfg, rng, Instant::now()))
}

/// Runs a session built by the caller (e.g. with [`Session::with_key`], the
/// key whose fingerprint went to the pairing server) on `socket`.
pub fn start_session(
    socket: UdpSocket,
    peer: SocketAddr,
    session: Session,
) -> std::io::Result<MediaHandle> {
    let local = socket.local_addr()?;
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (stats_tx, stats_rx) = watch::channel(DriverStats::default());
    tokio::spawn(run(socket, peer, session, cmd_rx, ev_tx, stats_tx));
    Ok(MediaHandle {
        cmds: cmd_tx,
        events: ev_rx,
        stats: stats_rx,
        local,
    })
}

async fn run(
    socket: UdpSocket,
    mut peer: SocketAddr,
    mut session: Session,
    mut cmds: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    stats: watch::Sender<DriverStats>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ds = DriverStats::default();
    let mut muted = false;
    loop {
        let mut out = PeerOut {
            socket: &socket,
            peer,
            send_errors: &mut ds.send_errors,
        };
        drain(|| session.poll_transmit(), &mut out).await;
        while let Some(ev) = session.poll_event() {
            if events.try_send(ev).is_err() {
                ds.events_dropped += 1;
            }
        }
        ds.session = session.stats().clone();
        stats.send_replace(ds.clone());
        let deadline = session.poll_timeout();
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) if from == peer => {
                    session.handle_datagram(Instant::now(), buf.get(..n).unwrap_or(&[]));
                }
                Ok(_) => ds.foreign += 1,
                Err(e) => tracing::debug!(error = %e, "media socket receive error"),
            },
            _ = sleep_until(deadline) => session.handle_timeout(Instant::now()),
            cmd = cmds.recv() => match cmd {
                Some(Command::Audio(_)) if muted => ds.muted_frames += 1,
                Some(Command::Audio(pcm)) => {
                    let _ = session.send_audio(&pcm);
                }
                Some(Command::Mute(m)) => muted = m,
                Some(Command::Retarget(to, pt, opus)) => {
                    if to != peer {
                        tracing::info!(from = %peer, %to, "media moved by the signalling");
                    }
                    peer = to;
                    session.set_payload_types(pt, opus);
                }
                Some(Command::Text(t)) => {
                    if let Err(e) = session.send_text(Instant::now(), &t) {
                        tracing::debug!(error = %e, "chat message refused");
                    }
                }
                None => return,
            },
        }
    }
}

/// The peer's address on the media socket; failed sends are counted.
struct PeerOut<'a> {
    socket: &'a UdpSocket,
    peer: SocketAddr,
    send_errors: &'a mut u64,
}

impl Sink<Vec<u8>> for PeerOut<'_> {
    async fn send(&mut self, datagram: Vec<u8>) {
        if self.socket.send_to(&datagram, self.peer).await.is_err() {
            *self.send_errors += 1;
        }
    }
}
