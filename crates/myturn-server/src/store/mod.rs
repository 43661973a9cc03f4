//! The state behind an interface: [`Store`] runs any [`Command`]
//! atomically, and [`MemoryStore`] is the in-memory implementation every
//! server runs today.
//!
//! The interface is one method, shaped for a networked store as much as
//! for memory:
//!
//! * it takes a [`Command`] (owned, plain data; the moment included, read
//!   once by the caller) and answers an owned [`Reply`]: nothing borrows
//!   the state, so the step can run anywhere the records are;
//! * it answers a future: a networked store waits on the network without
//!   blocking the node;
//! * what other parties must hear ([`Delivery`]) is handed to a
//!   [`Deliver`] sink *inside* the atomic step, so every user hears about
//!   changes in the order they happened (memory: under the lock);
//! * PBX changes are announced to a [`PbxNotify`] after the step.
//!
//! The rules are not here: a store runs [`Command::apply`] over its
//! records (a [`State`](crate::core::state::State)); see `docs/scaling.md`
//! for how a networked store does that without a second copy of them.

mod memory;
pub mod redis;

pub use self::redis::{RedisConfig, RedisStore};
pub use memory::MemoryStore;

use std::future::Future;
use std::pin::Pin;

use crate::clock::At;
use crate::core::effects::{PairMade, Told};
use crate::core::{Command, Core, CoreError, Delivery, Reply};

/// Why a store did not answer a command with its reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The use case refused.
    #[error(transparent)]
    Refused(#[from] CoreError),
    /// The store could not carry the command out (temporarily: retry).
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
}

/// A command's reply, and what its effects ask of this node besides the
/// deliveries (already carried out).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the use case answered.
    pub reply: Reply,
    /// Sockets the deliveries were queued on.
    pub reached: usize,
    /// Pairs made (for the metrics).
    pub pairings: Vec<PairMade>,
    /// The lifecycle steps, for the node's log.
    pub story: Vec<Told>,
    /// When a sweep next has work (Unix milliseconds), if the step set a
    /// deadline.
    pub wake_at: Option<u64>,
}

/// A command under way.
pub type Pending<'a> = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send + 'a>>;

/// Where deliveries go: the node's sockets and long-polls. Returns how
/// many sockets they reached.
pub trait Deliver: Send + Sync + std::fmt::Debug {
    /// Carries out `deliveries`, in order.
    fn deliver(&self, deliveries: Vec<Delivery>) -> usize;
}

/// Told when the PBX's account directory changed.
pub trait PbxNotify: Send + Sync + std::fmt::Debug {
    /// The directory changed; returns the change's generation.
    fn changed(&self) -> u64;
}

/// Runs use cases atomically. See the module docs.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Runs `command` at `now`, as one atomic step.
    fn execute(&self, command: Command, now: At) -> Pending<'_>;
    /// As `--state` names it (`memory`, `redis`).
    fn kind(&self) -> &'static str;
    /// Why the store cannot serve right now, if it cannot.
    fn error(&self) -> Option<String> {
        None
    }
    /// Whether this node runs the periodic sweep (with several nodes on
    /// one store, one of them does).
    fn leads_sweep(&self) -> bool {
        true
    }
    /// Whether this node holds the named lease (one node at a time does,
    /// and it moves when that node dies); alone on its state, always.
    fn holds(&self, _lease: &str) -> bool {
        true
    }
    /// Whether other nodes share this state.
    fn shared(&self) -> bool {
        false
    }
    /// Leaves the nodes sharing this state, at shutdown: what is buffered
    /// is written, this node's streams are closed for the others to see,
    /// its leases are given up.
    fn leave(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
    /// Tests only: runs `f` on the in-memory core, if this is one.
    #[doc(hidden)]
    fn inspect(&self, _f: &mut dyn FnMut(&mut Core)) {}
}
