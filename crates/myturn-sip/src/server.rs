//! The server side every SIP element shares, the user agent and the
//! built-in PBX alike: the table of server transactions (RFC 3261 §17.2)
//! with retransmission absorption, and the answer to a datagram that did
//! not parse (RFC 4475 §3.1.2).
//!
//! Each core keeps one [`ServerTransactions`]: it asks [`ServerTransactions::arrival`]
//! first for every request, records what it answers with
//! [`ServerTransactions::respond`], and fires timers with
//! [`ServerTransactions::fire`] (one transaction, for a core with a timer
//! heap) or [`ServerTransactions::fire_all`].

use std::collections::HashMap;
use std::net::SocketAddr;
use web_time::Instant;

use crate::build;
use crate::msg::{self, Method, Rejected};
use crate::transaction::{ServerState, ServerTx, TimerAction, Timers};
use crate::Transmit;

/// What a request means for the open server transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// A retransmission of a request whose transaction is open: absorbed.
    /// `Some`: the last response, to send again.
    Absorbed(Option<Transmit>),
    /// The ACK for a non-2xx final: the INVITE transaction took it (timer
    /// I runs); nothing else to do.
    AckAbsorbed,
    /// Not for an open transaction (a new request, the ACK for a 2xx, a
    /// CANCEL): the core handles it.
    New,
}

/// The server transactions of one element, by key ([`build::server_key`]).
#[derive(Debug)]
pub struct ServerTransactions {
    txs: HashMap<String, ServerTx>,
    timers: Timers,
}

impl ServerTransactions {
    /// No transactions yet; `timers` are the element's T1, T2 and T4.
    pub fn new(timers: Timers) -> Self {
        ServerTransactions {
            txs: HashMap::new(),
            timers,
        }
    }

    /// Matches a request (of `method`, with transaction `key`) against the
    /// open transactions (§17.2.3): retransmissions are absorbed, an ACK
    /// for a non-2xx final confirms its transaction.
    pub fn arrival(&mut self, now: Instant, key: &str, method: &Method) -> Arrival {
        let Some(tx) = self.txs.get_mut(key) else {
            return Arrival::New;
        };
        if *method == Method::ACK {
            if tx.state == ServerState::Completed {
                tx.on_ack(now, &self.timers);
                return Arrival::AckAbsorbed;
            }
            // An ACK for a 2xx shares no transaction.
            return Arrival::New;
        }
        if *method == Method::CANCEL {
            // Matched against the INVITE transaction by the core.
            return Arrival::New;
        }
        self.absorb(key).unwrap_or(Arrival::New)
    }

    /// The request of transaction `key` came again: `Some` when that
    /// transaction is open (the retransmission is absorbed).
    pub fn absorb(&mut self, key: &str) -> Option<Arrival> {
        let tx = self.txs.get_mut(key)?;
        let dest = tx.dest;
        let resend = tx.on_retransmission().map(|r| Transmit {
            dest,
            payload: r.to_vec(),
        });
        Some(Arrival::Absorbed(resend))
    }

    /// Opens the transaction `key`; its responses go to `dest`.
    pub fn open(&mut self, key: String, invite: bool, dest: SocketAddr) {
        let tx = ServerTx::new(key.clone(), invite, dest);
        self.txs.insert(key, tx);
    }

    /// Records the `code` response `payload`, sent to `dest`, in
    /// transaction `key` when it is open; gives back the datagram to send.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &str,
        code: u16,
        payload: Vec<u8>,
        dest: SocketAddr,
    ) -> Transmit {
        if let Some(tx) = self.txs.get_mut(key) {
            tx.on_send(now, &self.timers, code, payload.clone());
            tx.dest = dest;
        }
        Transmit { dest, payload }
    }

    /// The open transaction `key`.
    pub fn get(&self, key: &str) -> Option<&ServerTx> {
        self.txs.get(key)
    }

    /// Forgets transaction `key`.
    pub fn remove(&mut self, key: &str) -> Option<ServerTx> {
        self.txs.remove(key)
    }

    /// Number of open transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The earliest deadline of any transaction.
    pub fn deadline(&self) -> Option<Instant> {
        self.txs.values().filter_map(ServerTx::deadline).min()
    }

    /// Fires the timers of transaction `key` due at `now`, and forgets it
    /// once terminated. `Some`: a response to send again (timer G).
    pub fn fire(&mut self, now: Instant, key: &str) -> Option<Transmit> {
        let tx = self.txs.get_mut(key)?;
        let resend = Self::fire_one(tx, now, &self.timers);
        if tx.state == ServerState::Terminated {
            self.txs.remove(key);
        }
        resend
    }

    /// Fires every transaction's due timers, forgets the terminated ones,
    /// and gives back the responses to send again.
    pub fn fire_all(&mut self, now: Instant) -> Vec<Transmit> {
        let timers = self.timers;
        let resend = self
            .txs
            .values_mut()
            .filter_map(|tx| Self::fire_one(tx, now, &timers))
            .collect();
        self.txs.retain(|_, t| t.state != ServerState::Terminated);
        resend
    }

    fn fire_one(tx: &mut ServerTx, now: Instant, timers: &Timers) -> Option<Transmit> {
        if tx.on_timeout(now, timers) != Some(TimerAction::Retransmit) {
            return None;
        }
        let payload = tx.last_response.clone()?;
        Some(Transmit {
            dest: tx.dest,
            payload,
        })
    }
}

/// What became of a datagram that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// A request whose headers could be read: answer it (400, 505, 513).
    Answer(Transmit),
    /// A keep-alive (CRLF): nothing to do.
    KeepAlive,
    /// Noise, a response, an ACK: dropped.
    Dropped,
}

impl Malformed {
    /// Counts it (answered requests in `rejected`, dropped datagrams in
    /// `dropped`, keep-alives nowhere) and gives back the answer to send.
    pub fn count(self, rejected: &mut u64, dropped: &mut u64) -> Option<Transmit> {
        match self {
            Malformed::Answer(t) => {
                *rejected += 1;
                Some(t)
            }
            Malformed::KeepAlive => None,
            Malformed::Dropped => {
                *dropped += 1;
                None
            }
        }
    }
}

/// Sorts out a datagram from `from` that did not parse (`rejected`):
/// answered with `tag()` as To tag when RFC 4475 §3.1.2 asks for an
/// answer (400, 505 or 513), else dropped. Logs it.
pub fn malformed(
    data: &[u8],
    from: SocketAddr,
    rejected: &Rejected,
    tag: impl FnOnce() -> String,
) -> Malformed {
    match build::answer_malformed(data, rejected, tag) {
        Some(payload) => {
            tracing::debug!(%from, error = %rejected.error, "malformed SIP request answered");
            Malformed::Answer(Transmit {
                dest: from,
                payload,
            })
        }
        None if rejected.error == msg::ParseError::KeepAlive => Malformed::KeepAlive,
        None => {
            tracing::debug!(%from, error = %rejected.error, "SIP datagram dropped");
            Malformed::Dropped
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::build::Reply;

    const INVITE: &[u8] = b"INVITE sip:a@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKs1\r\n\
From: <sip:b@127.0.0.1>;tag=f\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c\r\n\
CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    fn src() -> SocketAddr {
        "127.0.0.1:5070".parse().unwrap()
    }

    #[test]
    fn a_retransmission_gets_the_last_response_and_an_ack_confirms() {
        let now = Instant::now();
        let req = msg::parse(INVITE).unwrap();
        let key = build::server_key(&req);
        let mut txs = ServerTransactions::new(Timers::default());
        assert_eq!(txs.arrival(now, &key, &Method::INVITE), Arrival::New);
        txs.open(key.clone(), true, src());
        // Nothing sent yet: absorbed, nothing to resend.
        assert_eq!(
            txs.arrival(now, &key, &Method::INVITE),
            Arrival::Absorbed(None)
        );
        let bytes = Reply::new(486, "Busy Here").tag("t").for_request(&req);
        let sent = txs.respond(now, &key, 486, bytes.clone(), src());
        assert_eq!(sent.payload, bytes);
        assert_eq!(
            txs.arrival(now, &key, &Method::INVITE),
            Arrival::Absorbed(Some(sent.clone()))
        );
        // Timer G resends the 486 until the ACK.
        let t1 = Timers::default().t1;
        assert_eq!(txs.fire(now + t1, &key), Some(sent));
        assert_eq!(txs.arrival(now, &key, &Method::ACK), Arrival::AckAbsorbed);
        assert_eq!(txs.fire(now + t1 * 2, &key), None);
        // Timer I ends it.
        assert!(txs.fire_all(now + Duration::from_secs(10)).is_empty());
        assert!(txs.is_empty());
    }

    #[test]
    fn malformed_requests_are_answered_and_noise_dropped() {
        let bad = b"INVITE sip:a@127.0.0.1 SIP/3.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
From: <sip:b@127.0.0.1>;tag=f\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";
        let (mut rejected, mut dropped) = (0, 0);
        for (data, answered) in [(&bad[..], true), (&b"\x00\x01garbage"[..], false)] {
            let Err(r) = msg::parse(data) else {
                panic!("parsed");
            };
            let answer =
                malformed(data, src(), &r, || "t".into()).count(&mut rejected, &mut dropped);
            assert_eq!(answer.is_some(), answered);
        }
        assert_eq!((rejected, dropped), (1, 1));
    }
}
