//! RFC 3261 §17 transactions over an unreliable transport (UDP), sans-IO.
//!
//! The state machines only keep bytes, addresses and deadlines; the user
//! agent core ([`crate::ua`]) creates them, feeds them messages and timer
//! expiries, and sends what they return.

use std::net::SocketAddr;
use std::time::Duration;

use web_time::Instant;

/// T1, T2 and T4 (RFC 3261 §17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate: 500 ms.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE
    /// responses: 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network: 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// Timers B, F, H and J: 64·T1.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Client transaction states (§17.1.1.2 and §17.1.2.2; `Calling` doubles
/// as non-INVITE `Trying`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, nothing heard (timers A and B).
    Calling,
    /// Provisional heard (non-INVITE: also the initial state, timers E and F).
    Proceeding,
    /// Final non-2xx heard; lingering to absorb retransmissions (timers D and K).
    Completed,
    /// Over.
    Terminated,
}

/// What a client transaction tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutcome {
    /// Pass this response up to the transaction user.
    Deliver,
    /// A retransmission to absorb (after resending the ACK, if any).
    Absorb,
    /// Timer B or F fired: the request timed out.
    Timeout,
}

/// A client transaction: the request, its retransmission schedule and the
/// timers that end it.
#[derive(Debug)]
pub struct ClientTx {
    /// Our Via branch.
    pub branch: String,
    /// The CSeq method: `INVITE` or anything else.
    pub invite: bool,
    /// The method (CSeq's), which tells CANCEL from its INVITE.
    pub method: String,
    /// The request as sent, for retransmissions.
    pub request: Vec<u8>,
    /// Where it went.
    pub dest: SocketAddr,
    /// Where the transaction is.
    pub state: ClientState,
    /// Timer A or E.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer B or F.
    timeout_at: Instant,
    /// Timer D or K.
    end_at: Option<Instant>,
    /// The ACK this INVITE transaction sent for a non-2xx final response,
    /// resent for each retransmission of that response.
    pub ack: Option<Vec<u8>>,
    /// Retransmissions so far.
    pub retransmissions: u64,
}

impl ClientTx {
    /// A transaction for `request`, just sent to `dest` at `now`.
    pub fn new(
        now: Instant,
        timers: &Timers,
        branch: String,
        method: &str,
        request: Vec<u8>,
        dest: SocketAddr,
    ) -> Self {
        ClientTx {
            branch,
            invite: method == "INVITE",
            method: method.to_owned(),
            request,
            dest,
            state: ClientState::Calling,
            retransmit_at: Some(now + timers.t1),
            interval: timers.t1,
            timeout_at: now + timers.t64(),
            end_at: None,
            ack: None,
            retransmissions: 0,
        }
    }

    /// The earliest deadline, if the transaction is alive.
    pub fn deadline(&self) -> Option<Instant> {
        if self.state == ClientState::Terminated {
            return None;
        }
        [
            self.retransmit_at,
            (self.state != ClientState::Completed).then_some(self.timeout_at),
            self.end_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires due timers; returns bytes to retransmit, or `Timeout`.
    pub fn on_timeout(&mut self, now: Instant, timers: &Timers) -> Option<TimerAction> {
        if self.state == ClientState::Terminated {
            return None;
        }
        if let Some(end) = self.end_at {
            if now >= end {
                self.state = ClientState::Terminated;
                return None;
            }
        }
        if self.state != ClientState::Completed && now >= self.timeout_at {
            self.state = ClientState::Terminated;
            return Some(TimerAction::Timeout);
        }
        match self.retransmit_at {
            Some(at) if now >= at => {
                // Timer A doubles without bound (B ends it); E doubles up
                // to T2, and is T2 once a provisional arrived (§17.1.2.2).
                self.interval = if self.invite {
                    self.interval * 2
                } else if self.state == ClientState::Proceeding {
                    timers.t2
                } else {
                    (self.interval * 2).min(timers.t2)
                };
                self.retransmit_at = Some(now + self.interval);
                self.retransmissions += 1;
                Some(TimerAction::Retransmit)
            }
            _ => None,
        }
    }

    /// A response matched this transaction.
    pub fn on_response(&mut self, now: Instant, timers: &Timers, code: u16) -> ClientOutcome {
        match (self.state, code) {
            (ClientState::Terminated, _) => ClientOutcome::Absorb,
            (ClientState::Completed, _) => ClientOutcome::Absorb,
            (_, 100..=199) => {
                self.state = ClientState::Proceeding;
                if self.invite {
                    // Timer A stops on a provisional (§17.1.1.2).
                    self.retransmit_at = None;
                } else {
                    self.retransmit_at = Some(now + timers.t2);
                }
                ClientOutcome::Deliver
            }
            (_, 200..=299) if self.invite => {
                // The TU acknowledges 2xx itself (§13.2.2.4).
                self.state = ClientState::Terminated;
                ClientOutcome::Deliver
            }
            _ => {
                self.state = ClientState::Completed;
                self.retransmit_at = None;
                // Timer D (≥ 32 s) for INVITE, K (T4) otherwise.
                let linger = if self.invite {
                    Duration::from_secs(32).max(timers.t64() / 2)
                } else {
                    timers.t4
                };
                self.end_at = Some(now + linger);
                ClientOutcome::Deliver
            }
        }
    }
}

/// What a fired timer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Send the request (client) or the last response (server) again.
    Retransmit,
    /// No answer in time (timers B, F; H for a server).
    Timeout,
}

/// Server transaction states (§17.2.1 and §17.2.2; `Proceeding` doubles as
/// non-INVITE `Trying`; `Accepted` is RFC 6026's state after a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Request received, no final answer sent yet.
    Proceeding,
    /// INVITE answered 2xx: retransmitted INVITEs are absorbed (and the 2xx
    /// resent) for 64·T1 instead of looking like new calls (RFC 6026 §8.7).
    Accepted,
    /// Final non-2xx sent; INVITE: retransmitted until the ACK.
    Completed,
    /// INVITE: the ACK came (timer I).
    Confirmed,
    /// Over.
    Terminated,
}

/// A server transaction: absorbs request retransmissions by resending the
/// last response, retransmits INVITE's non-2xx final (timer G) until ACK.
#[derive(Debug)]
pub struct ServerTx {
    /// Branch + sent-by + method (RFC 3261 matching), or a compound key
    /// for RFC 2543 requests (§17.2.3).
    pub key: String,
    /// Whether it is an INVITE transaction.
    pub invite: bool,
    /// Where the transaction is.
    pub state: ServerState,
    /// Where responses go.
    pub dest: SocketAddr,
    /// The last response sent, resent for retransmitted requests.
    pub last_response: Option<Vec<u8>>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer H or J.
    end_at: Option<Instant>,
    /// Timer I.
    confirmed_end: Option<Instant>,
    /// Responses sent again so far.
    pub retransmissions: u64,
}

impl ServerTx {
    /// A transaction for a request just received; responses go to `dest`.
    pub(crate) fn new(key: String, invite: bool, dest: SocketAddr) -> Self {
        ServerTx {
            key,
            invite,
            state: ServerState::Proceeding,
            dest,
            last_response: None,
            retransmit_at: None,
            interval: Duration::ZERO,
            end_at: None,
            confirmed_end: None,
            retransmissions: 0,
        }
    }

    /// When its next timer is due.
    pub fn deadline(&self) -> Option<Instant> {
        if self.state == ServerState::Terminated {
            return None;
        }
        [self.retransmit_at, self.end_at, self.confirmed_end]
            .into_iter()
            .flatten()
            .min()
    }

    /// The TU sends `code`; the transaction records it.
    pub(crate) fn on_send(&mut self, now: Instant, timers: &Timers, code: u16, bytes: Vec<u8>) {
        self.last_response = Some(bytes);
        if code < 200 || self.state != ServerState::Proceeding {
            return;
        }
        if self.invite && code < 300 {
            // 2xx: the TU retransmits it until ACK (§13.3.1.4); timer L.
            self.state = ServerState::Accepted;
            self.end_at = Some(now + timers.t64());
        } else if self.invite {
            self.state = ServerState::Completed;
            self.interval = timers.t1;
            self.retransmit_at = Some(now + timers.t1);
            self.end_at = Some(now + timers.t64());
        } else {
            self.state = ServerState::Completed;
            self.end_at = Some(now + timers.t64());
        }
    }

    /// The request was retransmitted: the response to resend, if any.
    pub(crate) fn on_retransmission(&mut self) -> Option<&[u8]> {
        if self.state == ServerState::Confirmed {
            return None;
        }
        self.retransmissions += 1;
        self.last_response.as_deref()
    }

    /// An ACK for a non-2xx final arrived.
    pub(crate) fn on_ack(&mut self, now: Instant, timers: &Timers) {
        if self.state == ServerState::Completed {
            self.state = ServerState::Confirmed;
            self.retransmit_at = None;
            self.end_at = None;
            self.confirmed_end = Some(now + timers.t4);
        }
    }

    /// Fires due timers; `Retransmit` asks to resend `last_response`,
    /// `Timeout` means timer H fired (no ACK came).
    pub(crate) fn on_timeout(&mut self, now: Instant, timers: &Timers) -> Option<TimerAction> {
        if self.confirmed_end.is_some_and(|t| now >= t) {
            self.state = ServerState::Terminated;
            return None;
        }
        if self.end_at.is_some_and(|t| now >= t) {
            let was_invite_completed = self.invite && self.state == ServerState::Completed;
            self.state = ServerState::Terminated;
            return was_invite_completed.then_some(TimerAction::Timeout);
        }
        match self.retransmit_at {
            Some(at) if now >= at => {
                self.interval = (self.interval * 2).min(timers.t2);
                self.retransmit_at = Some(now + self.interval);
                self.retransmissions += 1;
                Some(TimerAction::Retransmit)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:5060".parse().unwrap()
    }

    #[test]
    fn non_invite_client_e_doubles_to_t2_and_f_times_out() {
        let t = Timers::default();
        let now = Instant::now();
        let mut tx = ClientTx::new(now, &t, "z9hG4bKx".into(), "REGISTER", vec![1], addr());
        let mut at = now;
        let mut intervals = Vec::new();
        loop {
            let d = tx.deadline().unwrap();
            intervals.push(d - at);
            at = d;
            match tx.on_timeout(d, &t) {
                Some(TimerAction::Retransmit) => continue,
                Some(TimerAction::Timeout) => break,
                None => panic!("a deadline fired nothing"),
            }
        }
        let ms: Vec<u128> = intervals.iter().map(|d| d.as_millis()).collect();
        assert_eq!(&ms[..6], &[500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(at - now, t.t64());
        assert_eq!(tx.state, ClientState::Terminated);
    }

    #[test]
    fn invite_client_a_doubles_b_times_out_d_lingers() {
        let t = Timers::default();
        let now = Instant::now();
        let mut tx = ClientTx::new(now, &t, "z9hG4bKy".into(), "INVITE", vec![1], addr());
        let d1 = tx.deadline().unwrap();
        assert_eq!(tx.on_timeout(d1, &t), Some(TimerAction::Retransmit));
        assert_eq!(tx.deadline().unwrap() - d1, Duration::from_secs(1));
        assert_eq!(tx.on_response(d1, &t, 180), ClientOutcome::Deliver);
        // A provisional stops timer A: the next deadline is B.
        assert_eq!(tx.deadline().unwrap(), now + t.t64());
        assert_eq!(tx.on_response(d1, &t, 486), ClientOutcome::Deliver);
        assert_eq!(tx.on_response(d1, &t, 486), ClientOutcome::Absorb);
        assert_eq!(tx.deadline().unwrap(), d1 + Duration::from_secs(32));
        assert_eq!(tx.on_timeout(d1 + Duration::from_secs(32), &t), None);
        assert_eq!(tx.state, ClientState::Terminated);
    }

    #[test]
    fn invite_server_g_h_and_i() {
        let t = Timers::default();
        let now = Instant::now();
        let mut tx = ServerTx::new("k".into(), true, addr());
        tx.on_send(now, &t, 180, b"180".to_vec());
        assert_eq!(tx.on_retransmission(), Some(&b"180"[..]));
        tx.on_send(now, &t, 486, b"486".to_vec());
        assert_eq!(tx.state, ServerState::Completed);
        let g1 = tx.deadline().unwrap();
        assert_eq!(g1 - now, t.t1);
        assert_eq!(tx.on_timeout(g1, &t), Some(TimerAction::Retransmit));
        assert_eq!(tx.deadline().unwrap() - g1, t.t1 * 2);
        tx.on_ack(g1, &t);
        assert_eq!(tx.state, ServerState::Confirmed);
        assert_eq!(tx.on_retransmission(), None, "absorbed once confirmed");
        assert_eq!(tx.deadline().unwrap(), g1 + t.t4);
        assert_eq!(tx.on_timeout(g1 + t.t4, &t), None);
        assert_eq!(tx.state, ServerState::Terminated);

        let mut lost = ServerTx::new("k2".into(), true, addr());
        lost.on_send(now, &t, 486, b"486".to_vec());
        let mut fired = None;
        while let Some(d) = lost.deadline() {
            fired = lost.on_timeout(d, &t);
        }
        assert_eq!(
            fired,
            Some(TimerAction::Timeout),
            "timer H reports the lost ACK"
        );
    }

    #[test]
    fn non_invite_server_j() {
        let t = Timers::default();
        let now = Instant::now();
        let mut tx = ServerTx::new("k".into(), false, addr());
        tx.on_send(now, &t, 200, b"200".to_vec());
        assert_eq!(tx.on_retransmission(), Some(&b"200"[..]));
        assert_eq!(tx.deadline().unwrap(), now + t.t64());
        assert_eq!(tx.on_timeout(now + t.t64(), &t), None);
        assert_eq!(tx.state, ServerState::Terminated);
    }
}
