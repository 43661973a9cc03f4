//! # myturn-rt
//!
//! The tokio glue every sans-IO driver in myTurn shares: the SIP user
//! agent's (`myturn-sip`), the built-in PBX's (`myturn-pbx`) and the
//! secure media session's (`myturn-media`). Each driver is one task that
//! owns its core and loops: drain what the core wants sent, then wait for
//! a datagram, a command or the core's next deadline. The two steps that
//! are the same in all of them live here, once:
//!
//! * [`sleep_until`]: waits for the deadline `poll_timeout` returned, or
//!   forever when the core has none (so a `tokio::select!` arm for the
//!   timer needs no special case).
//! * [`drain`]: takes items out of a core's `poll_*` queue until it is
//!   empty and hands each to the driver's [`Sink`] (a socket, a TLS
//!   connection, a channel).
//!
//! Why a crate of its own: `myturn-media` does not depend on
//! `myturn-sip` (media has nothing to do with SIP), and the cores stay
//! free of tokio; a tiny crate that depends on tokio alone is the one
//! place all three drivers can share without new coupling between them.
//! For the same reason it also holds, hidden, the one thing their fuzz
//! bodies share: `fuzzing::Counter`, the fixed RNG injected into a core
//! under fuzzing (hence `rand_core`, which every core already uses).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::collections::VecDeque;
//! struct Collect(Vec<u32>);
//! impl myturn_rt::Sink<u32> for Collect {
//!     async fn send(&mut self, x: u32) {
//!         self.0.push(x);
//!     }
//! }
//! let mut core: VecDeque<u32> = VecDeque::from([1, 2, 3]);
//! let mut sent = Collect(Vec::new());
//! myturn_rt::drain(|| core.pop_front(), &mut sent).await;
//! assert_eq!(sent.0, [1, 2, 3]);
//! // No deadline: this arm never fires.
//! tokio::select! {
//!     _ = myturn_rt::sleep_until(None) => unreachable!(),
//!     _ = std::future::ready(()) => {}
//! }
//! # }
//! ```

#![warn(missing_docs, unreachable_pub)]

#[doc(hidden)]
pub mod fuzzing;

use std::time::Instant;

/// Sleeps until `deadline`, or forever when there is none: the timer arm
/// of a driver's `select!` over a core's `poll_timeout()`.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Where a driver sends what its core produced: a socket, a TLS
/// connection, a channel. Errors are the sink's to count or log: a lost
/// datagram is the protocol's to recover, never the driver's to stop on.
pub trait Sink<T> {
    /// Sends one item.
    fn send(&mut self, item: T) -> impl std::future::Future<Output = ()> + Send;
}

/// Calls `poll` until it returns `None` and sends each item into `sink`,
/// in order: a core's `poll_transmit` drained into its socket.
pub async fn drain<T, S: Sink<T>>(mut poll: impl FnMut() -> Option<T>, sink: &mut S) {
    while let Some(item) = poll() {
        sink.send(item).await;
    }
}
