//! What the PBX reports: its events (for logs and the pairing server) and
//! its counters (for `/metrics`).

use std::net::{IpAddr, SocketAddr};

/// What the PBX reports (for logs and the pairing server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A binding was added or refreshed.
    Registered {
        /// The account.
        username: String,
        /// The Contact bound.
        contact: String,
        /// Where the REGISTER came from (where requests for the user go).
        source: SocketAddr,
        /// The lifetime granted, seconds.
        expires: u32,
    },
    /// The binding is gone: `Expires: 0`, expiry, or the account removed.
    Unregistered {
        /// The account.
        username: String,
        /// Why: `expired`, `unregistered`, `account removed`.
        why: &'static str,
    },
    /// Too many failed authentications: the IP is ignored for
    /// [`Config::block_for`](crate::core::Config::block_for).
    Blocked {
        /// The source IP.
        ip: IpAddr,
        /// Failures counted within the window.
        failures: u32,
    },
    /// The IP sent faster than
    /// [`FloodConfig::requests`](crate::limits::FloodConfig::requests): ignored
    /// for [`Config::block_for`](crate::core::Config::block_for), renewed
    /// while it keeps on.
    Flooding {
        /// The source IP.
        ip: IpAddr,
    },
    /// An INVITE was routed from one user to another's extension.
    CallRouted {
        /// The caller's username.
        from: String,
        /// The callee's username.
        to: String,
    },
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// REGISTERs that made or refreshed a binding.
    pub registrations: u64,
    /// Bindings removed (`Expires: 0`, expiry, account removed).
    pub unregistrations: u64,
    /// Credentials that proved nothing (wrong password, unknown user, forged nonce).
    pub auth_failures: u64,
    /// Source IPs blocked for failed authentications.
    pub blocks: u64,
    /// Source IPs blocked for flooding.
    pub flood_blocks: u64,
    /// Datagrams ignored from blocked IPs (never parsed).
    pub blocked_packets: u64,
    /// Bytes of those datagrams.
    pub blocked_bytes: u64,
    /// Answers withheld from sources that had not proved a password and
    /// had used up their answer budget (no reflection).
    pub unanswered: u64,
    /// Datagrams from sources the full table could not track (let
    /// through unlimited).
    pub untracked: u64,
    /// Datagrams that were not SIP, too large, or not ours to relay.
    pub dropped: u64,
    /// Malformed requests answered with 400/505/513.
    pub rejected: u64,
    /// INVITEs routed to a registered user.
    pub calls_routed: u64,
    /// INVITEs to an unknown extension (404).
    pub calls_not_found: u64,
    /// INVITEs to a user not registered (480).
    pub calls_unavailable: u64,
    /// Request retransmissions absorbed by server transactions.
    pub absorbed: u64,
    /// Calls whose media was anchored (relay or rtpengine).
    pub media_calls: u64,
    /// Calls refused with 503 because the relay's port range was full.
    pub media_exhausted: u64,
    /// SDPs that could not be anchored (unreadable SDP, rtpengine error or
    /// silence); the call was refused, or the message passed unchanged.
    pub media_failures: u64,
    /// Anchored calls torn down because their media stopped.
    pub media_timeouts: u64,
    /// rtpengine control messages sent again for want of a reply.
    pub control_retransmissions: u64,
}
