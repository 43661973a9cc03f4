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

/// What the driver shares with the rest of the process.
#[derive(Debug, Default)]
pub struct Shared {
    pub stats: Stats,
    /// (username, contact, source address)
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
        loop {
            // Figures first: whoever reacts to what is sent next must see
            // them already.
            if let Ok(mut s) = shared.lock() {
                s.stats = pbx.stats();
                s.bindings = pbx.bindings();
                s.blocked_ips = pbx.blocked(Instant::now()).len();
            }
            while let Some(t) = pbx.poll_transmit() {
                if let Err(e) = socket.send_to(&t.payload, t.dest).await {
                    tracing::debug!(dest = %t.dest, error = %e, "SIP send failed");
                }
            }
            while let Some(ev) = pbx.poll_event() {
                log_event(&ev);
            }
            let deadline = pbx.poll_timeout();
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
