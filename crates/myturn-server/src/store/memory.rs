//! [`MemoryStore`]: one [`Core`] behind one mutex.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{Deliver, Outcome, PbxNotify, Pending, Store, StoreError};
use crate::clock::At;
use crate::core::{Command, Core, Effects};

/// The in-memory [`Store`]: one [`Core`] behind one mutex. Every command
/// runs to completion under the lock, deliveries included, which is what
/// makes pairing race-free and event order true. Its futures are ready at
/// the first poll.
#[derive(Debug)]
pub struct MemoryStore {
    core: Mutex<Core>,
    sink: Arc<dyn Deliver>,
    pbx: Arc<dyn PbxNotify>,
}

impl MemoryStore {
    /// A store over `core`, delivering to `sink` and telling `pbx`.
    pub fn new(core: Core, sink: Arc<dyn Deliver>, pbx: Arc<dyn PbxNotify>) -> Self {
        MemoryStore {
            core: Mutex::new(core),
            sink,
            pbx,
        }
    }

    /// Locks the core. A poisoned lock is recovered: every use case leaves
    /// the core consistent before it could panic.
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn execute(&self, command: Command, now: At) -> Pending<'_> {
        let mut fx = Effects::default();
        let (result, reached) = {
            let mut core = self.lock();
            let result = core.execute(command, now, &mut fx);
            // Also on failure: a reused refresh token revokes its family.
            let reached = if fx.deliveries.is_empty() {
                0
            } else {
                self.sink.deliver(std::mem::take(&mut fx.deliveries))
            };
            (result, reached)
        };
        if fx.pbx_changed {
            self.pbx.changed();
        }
        let outcome = result
            .map(|reply| Outcome {
                reply,
                reached,
                pairings: fx.pairings,
                story: fx.story,
                wake_at: fx.wake_at,
            })
            .map_err(StoreError::Refused);
        Box::pin(std::future::ready(outcome))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn inspect(&self, f: &mut dyn FnMut(&mut Core)) {
        f(&mut self.lock());
    }
}
