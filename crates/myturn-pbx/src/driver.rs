//! The tokio driver: one task owns the [`Pbx`], its UDP socket and its
//! timer. The pairing server pushes the account directory through a
//! `watch` channel; stats and bindings are readable at any time.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::core::{Account, Event, Pbx, Stats};

/// Largest datagram read (the parser applies the configured limit).
const MAX_DATAGRAM: usize = 65_535;
/// Longest the shared copy of the binding list may lag behind.
const SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// What the driver shares with the rest of the process.
#[derive(Debug, Default)]
pub struct Shared {
    pub stats: Stats,
    pub binding_count: usize,
    /// (username, contact, source address), refreshed at most every 100 ms.
    pub bindings: Vec<(String, String, std::net::SocketAddr)>,
    pub blocked_ips: usize,
}

/// A handle on a running PBX.
#[derive(Debug, Clone)]
pub struct PbxHandle {
    pub local: std::net::SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl PbxHandle {
    /// A handle for a PBX listening on `local` (shared before the task
    /// starts, so the rest of the process can hold it from the outset).
    pub fn new(local: std::net::SocketAddr) -> Self {
        PbxHandle {
            local,
            shared: Arc::default(),
        }
    }

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

    pub fn blocked_ips(&self) -> usize {
        self.shared
            .lock()
            .map(|s| s.blocked_ips)
            .unwrap_or_default()
    }
}

/// Runs `pbx` on `socket` until `shutdown` flips to true, publishing its
/// figures through `handle`. `accounts` is the directory; every change is
/// applied at once.
pub fn spawn(
    socket: UdpSocket,
    mut pbx: Pbx,
    handle: PbxHandle,
    mut accounts: watch::Receiver<Vec<Account>>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let shared = handle.shared;
    pbx.set_accounts(accounts.borrow_and_update().clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut copied_generation = u64::MAX;
        let mut copied_at = Instant::now() - SNAPSHOT_EVERY;
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
                    s.blocked_ips = pbx.blocked(now).len();
                    copied_at = now;
                }
            }
            while let Some(t) = pbx.poll_transmit() {
                // Straight to the socket; wait for room only when it is full.
                let sent = match socket.try_send_to(&t.payload, t.dest) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        socket.send_to(&t.payload, t.dest).await
                    }
                    other => other,
                };
                if let Err(e) = sent {
                    tracing::debug!(dest = %t.dest, error = %e, "SIP send failed");
                }
            }
            while let Some(ev) = pbx.poll_event() {
                log_event(&ev);
            }
            // Wake for a pending snapshot too, so the copy never lags more
            // than SNAPSHOT_EVERY even when the line goes quiet.
            let pending = pbx.bindings_generation() != copied_generation;
            let deadline = [
                pbx.poll_timeout(),
                pending.then(|| copied_at + SNAPSHOT_EVERY),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => pbx.handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or(&[])),
                    Err(e) => tracing::debug!(error = %e, "SIP socket receive error"),
                },
                _ = sleep_until(deadline) => pbx.handle_timeout(Instant::now()),
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

fn log_event(ev: &Event) {
    match ev {
        Event::Registered {
            username,
            source,
            expires,
            ..
        } => tracing::debug!(user = %username, %source, expires, "SIP registered"),
        Event::Unregistered { username, why } => {
            tracing::debug!(user = %username, why, "SIP binding removed")
        }
        Event::Blocked { ip, failures } => {
            tracing::warn!(%ip, failures, "SIP source blocked")
        }
        Event::CallRouted { from, to } => tracing::debug!(%from, %to, "SIP call routed"),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
