//! Batched UDP reads for the relay: `recvmmsg` (through `quinn-udp`, which
//! holds the one `unsafe` call) on a socket tokio watches as an
//! [`AsyncFd`].
//!
//! One system call returns every datagram queued on the socket, up to a
//! batch. When it returns fewer than a full batch, the queue was empty at
//! that instant, so readiness is cleared right there: the read that would
//! only have said "would block" (one system call per wake-up, a third of a
//! relayed datagram's syscalls at RTP rates) is not made. A datagram that
//! arrives later raises a new edge in epoll and wakes the task again.
//!
//! `quinn-udp` turns on UDP GRO where the kernel has it: one buffer may
//! then hold several datagrams from the same source, `stride` bytes apart;
//! [`Received::datagrams`] splits them.

use std::io::IoSliceMut;
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// Datagrams read per system call at most.
pub(crate) const BATCH: usize = if BATCH_SIZE < 16 { BATCH_SIZE } else { 16 };

/// A UDP socket read in batches.
#[derive(Debug)]
pub(crate) struct BatchSocket {
    fd: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
}

/// What one read returned, in the buffers it was given.
pub(crate) enum Received {
    /// `n` buffers filled (at least one); `full`: the batch was full, so
    /// more may be queued.
    Some { n: usize, full: bool },
    /// Nothing queued (readiness cleared), or an error report (such as
    /// ICMP port unreachable on a connected socket), consumed.
    Nothing,
}

impl BatchSocket {
    /// Registers `socket` (made non-blocking) with the current runtime.
    pub(crate) fn new(socket: std::net::UdpSocket) -> std::io::Result<BatchSocket> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        // `AsyncFd::new` is deprecated in favour of the `unsafe`
        // `AsyncFd::register` (this workspace forbids `unsafe`): the
        // soundness condition is that the file descriptor stays the same
        // for as long as the `AsyncFd` holds it, which a
        // `std::net::UdpSocket` it owns guarantees.
        #[allow(deprecated)]
        let fd = AsyncFd::new(socket)?;
        Ok(BatchSocket { fd, state })
    }

    /// The socket, for sends and `connect` (neither waits: the socket is
    /// non-blocking, and a full send buffer drops the datagram).
    pub(crate) fn socket(&self) -> &std::net::UdpSocket {
        self.fd.get_ref()
    }

    /// Waits until the socket may be readable.
    pub(crate) async fn readable(
        &self,
    ) -> std::io::Result<AsyncFdReadyGuard<'_, std::net::UdpSocket>> {
        self.fd.readable().await
    }

    /// Reads what is queued into `bufs` (one datagram, or one GRO batch,
    /// per buffer), their sources and lengths into `meta`. Clears
    /// `guard`'s readiness when the queue is left empty.
    pub(crate) fn recv(
        &self,
        guard: &mut AsyncFdReadyGuard<'_, std::net::UdpSocket>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Received {
        let want = bufs.len().min(meta.len());
        match guard.try_io(|fd| self.state.recv(fd.get_ref().into(), bufs, meta)) {
            Ok(Ok(n)) if n > 0 => {
                let full = n >= want;
                if !full {
                    guard.clear_ready();
                }
                Received::Some { n, full }
            }
            // Would block: `try_io` cleared readiness.
            Err(_) => Received::Nothing,
            // An error report consumed (or nothing read): the next read
            // tells whether more is queued.
            Ok(_) => Received::Nothing,
        }
    }
}

impl Received {
    /// The datagrams in buffer `buf` as `meta` describes it: its source,
    /// and each datagram's `(start, end)` in `buf` (one, or a GRO batch's
    /// `stride`-sized pieces; an empty datagram is one empty piece). A
    /// buffer filled to the brim may hold a cut datagram: `None` then, for
    /// the caller to drop and count.
    pub(crate) fn datagrams(
        buf: &[u8],
        meta: &RecvMeta,
    ) -> Option<(SocketAddr, impl Iterator<Item = (usize, usize)>)> {
        if meta.len >= buf.len() {
            return None;
        }
        let (len, stride) = (meta.len, meta.stride.max(1));
        let pieces = len.div_ceil(stride).max(1);
        Some((
            meta.addr,
            (0..pieces).map(move |i| (i * stride, ((i + 1) * stride).min(len))),
        ))
    }
}
