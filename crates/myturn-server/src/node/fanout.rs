//! Socket fan-out: each user's open event streams and long-poll wake-ups,
//! and the admins' streams. The [`Store`](crate::store::Store) hands its
//! [`Delivery`]s here, in order, from inside each atomic use case.
//!
//! Admin sockets hear the lobby and every [`Delivery::Admin`] change; a
//! new one first hears the last [`LOBBY_BACKLOG`] lobby lines this node
//! heard, so a console opened late still shows what was said.
//!
//! A socket is a bounded queue drained by its connection task; a client
//! that lets its queue fill up is dropped (the task closes it with
//! `close::TOO_SLOW`) rather than slowing anyone else down.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use myturn_wire::{AdminEvent, LeaveReason, ServerEvent};
use tokio::sync::{mpsc, watch};

use crate::core::{Delivery, UserId};
use crate::store::Deliver;

/// What the server sends down one WebSocket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event, as JSON text.
    Event(ServerEvent),
    /// A change for the admins, as JSON text (admin sockets only).
    Admin(AdminEvent),
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// WebSocket close codes (4000-4999 are the application's).
pub(crate) mod close {
    /// Normal closure (logout).
    pub(crate) const NORMAL: u16 = 1000;
    /// The access token expired or the session was revoked.
    pub(crate) const SESSION: u16 = 4001;
    /// Kicked or banned by an admin.
    pub(crate) const REMOVED: u16 = 4003;
    /// The client does not read its events fast enough.
    pub(crate) const TOO_SLOW: u16 = 4008;
    /// No pong within the liveness window.
    pub(crate) const DEAD: u16 = 4009;
}

/// Events queued per socket before it counts as too slow and is closed.
pub(crate) const SOCKET_QUEUE: usize = 64;

/// Lobby lines a new admin socket hears first (well under
/// [`SOCKET_QUEUE`], so the replay never counts as too slow).
pub const LOBBY_BACKLOG: usize = 50;

#[derive(Debug)]
struct Socket {
    id: u64,
    family: u64,
    tx: mpsc::Sender<Outbound>,
}

/// One user's wake-ups: a generation counter for long-polls and the
/// senders of their open WebSockets.
#[derive(Debug)]
struct Hub {
    gen: watch::Sender<u64>,
    sockets: Vec<Socket>,
}

#[derive(Debug, Default)]
struct Sockets {
    /// Per-user wake-ups. Dropping a hub (on removal) wakes every waiter
    /// and ends every socket of that user.
    hubs: HashMap<UserId, Hub>,
    /// Admin sockets (lobby chat, moderation).
    admins: Vec<Socket>,
    /// The last lobby lines, oldest first, for new admin sockets.
    backlog: VecDeque<ServerEvent>,
    next_socket: u64,
    open: usize,
}

/// The node's sockets and wake-ups. See the module docs.
#[derive(Debug, Default)]
pub struct Fanout {
    inner: Mutex<Sockets>,
}

fn push(sockets: &mut Vec<Socket>, msg: &Outbound) {
    // A socket whose queue is full is dropped: its task sees the channel
    // close and ends the connection with TOO_SLOW.
    sockets.retain(|s| s.tx.try_send(msg.clone()).is_ok());
}

/// The close code and reason for a user who left for `reason`.
fn farewell_close(reason: LeaveReason) -> (u16, &'static str) {
    match reason {
        LeaveReason::Kicked | LeaveReason::Banned => (close::REMOVED, "removed by a moderator"),
        LeaveReason::Expired => (close::SESSION, "lease expired"),
        LeaveReason::LoggedOut
        | LeaveReason::HungUp
        | LeaveReason::Disconnected
        | LeaveReason::NoAnswer => (close::NORMAL, "logged out"),
    }
}

impl Sockets {
    fn event(&mut self, user: UserId, event: ServerEvent) {
        if let Some(h) = self.hubs.get_mut(&user) {
            h.gen.send_modify(|g| *g = g.wrapping_add(1));
            push(&mut h.sockets, &Outbound::Event(event));
        }
    }

    fn lobby(&mut self, members: &[UserId], event: ServerEvent) -> usize {
        let msg = Outbound::Event(event);
        let mut n = 0;
        for u in members {
            if let Some(h) = self.hubs.get_mut(u) {
                push(&mut h.sockets, &msg);
                n += h.sockets.len();
            }
        }
        push(&mut self.admins, &msg);
        if let Outbound::Event(line @ ServerEvent::LobbyMessage { .. }) = msg {
            if self.backlog.len() >= LOBBY_BACKLOG {
                self.backlog.pop_front();
            }
            self.backlog.push_back(line);
        }
        n + self.admins.len()
    }

    fn revoke_family(&mut self, family: u64) {
        for h in self.hubs.values_mut() {
            h.sockets.retain(|s| {
                if s.family != family {
                    return true;
                }
                let _ = s.tx.try_send(Outbound::Event(ServerEvent::SessionExpired));
                let _ =
                    s.tx.try_send(Outbound::Close(close::SESSION, "session revoked"));
                false
            });
        }
    }

    fn left(&mut self, user: UserId, reason: LeaveReason, farewell: Option<ServerEvent>) {
        let Some(hub) = self.hubs.remove(&user) else {
            return;
        };
        let (code, why) = farewell_close(reason);
        for s in &hub.sockets {
            if let Some(ev) = &farewell {
                let _ = s.tx.try_send(Outbound::Event(ev.clone()));
            }
            let _ = s.tx.try_send(Outbound::Close(code, why));
        }
    }

    /// A user's hub, made if this node has none yet: a user registered
    /// before this node started (or restarted) has one made when they
    /// first open a stream or a long-poll here, after the store has just
    /// authenticated them.
    fn hub(&mut self, user: UserId) -> &mut Hub {
        self.hubs.entry(user).or_insert_with(|| Hub {
            gen: watch::channel(0).0,
            sockets: Vec::new(),
        })
    }

    fn add(&mut self, family: u64) -> (Socket, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let id = self.next_socket;
        self.next_socket += 1;
        (Socket { id, family, tx }, rx)
    }
}

impl Deliver for Fanout {
    fn deliver(&self, deliveries: Vec<Delivery>) -> usize {
        let mut s = self.lock();
        let mut reached = 0;
        for d in deliveries {
            match d {
                Delivery::Joined(user) => {
                    s.hub(user);
                }
                Delivery::Event(user, event) => s.event(user, event),
                Delivery::Lobby { members, event } => reached += s.lobby(&members, event),
                Delivery::Admin(event) => push(&mut s.admins, &Outbound::Admin(event)),
                Delivery::FamilyRevoked(family) => s.revoke_family(family),
                Delivery::Left {
                    user,
                    reason,
                    farewell,
                } => s.left(user, reason, farewell),
            }
        }
        reached
    }
}

impl Fanout {
    fn lock(&self) -> MutexGuard<'_, Sockets> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to a user's wake-ups (the sender drops when the user
    /// leaves).
    pub fn subscribe(&self, user: UserId) -> watch::Receiver<u64> {
        self.lock().hub(user).gen.subscribe()
    }

    /// Open sockets of a user.
    pub fn sockets_of(&self, user: UserId) -> usize {
        self.lock().hubs.get(&user).map_or(0, |h| h.sockets.len())
    }

    /// Open sockets in all (users and admins).
    pub fn sockets_open(&self) -> usize {
        self.lock().open
    }

    /// Registers a user's socket in session `family`; returns its id and
    /// receiver (`None` once the user is gone).
    pub fn attach(&self, user: UserId, family: u64) -> (u64, mpsc::Receiver<Outbound>) {
        let mut s = self.lock();
        let (socket, rx) = s.add(family);
        let id = socket.id;
        s.hub(user).sockets.push(socket);
        s.open += 1;
        (id, rx)
    }

    /// Registers an admin socket, its queue holding the lobby backlog.
    pub fn attach_admin(&self) -> (u64, mpsc::Receiver<Outbound>) {
        let mut s = self.lock();
        let (socket, rx) = s.add(0);
        for line in &s.backlog {
            let _ = socket.tx.try_send(Outbound::Event(line.clone()));
        }
        let id = socket.id;
        s.admins.push(socket);
        s.open += 1;
        (id, rx)
    }

    /// Forgets a socket when its task ends.
    pub fn detach(&self, user: Option<UserId>, socket: u64) {
        let mut s = self.lock();
        s.open = s.open.saturating_sub(1);
        match user {
            Some(u) => {
                if let Some(h) = s.hubs.get_mut(&u) {
                    h.sockets.retain(|x| x.id != socket);
                }
            }
            None => s.admins.retain(|x| x.id != socket),
        }
    }
}
