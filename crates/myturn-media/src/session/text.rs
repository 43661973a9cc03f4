//! The session's reliable, ordered text stream: windowed sending with
//! retransmission, in-order delivery, cumulative acks.

use web_time::Instant;

use crate::packet::Discard;

use super::{
    seal_with, Event, Outgoing, SendError, Session, State, TEXT_MAX_LEN, TEXT_QUEUE, TEXT_RTO,
    TEXT_WINDOW,
};

impl Session {
    /// Queues one chat message for reliable, ordered delivery.
    pub fn send_text(&mut self, now: Instant, text: &str) -> Result<(), SendError> {
        if text.is_empty() || text.len() > TEXT_MAX_LEN || text.chars().any(char::is_control) {
            return Err(SendError::BadText);
        }
        match self.state {
            State::Established(_) => {}
            State::Failed => return Err(SendError::Failed),
            _ => return Err(SendError::NotEstablished),
        }
        if self.pending.len() >= TEXT_QUEUE {
            return Err(SendError::TextBacklog);
        }
        self.pending.push_back(text.to_owned());
        self.flush_text(now);
        Ok(())
    }

    /// Puts queued messages in flight while the window has room.
    pub(super) fn flush_text(&mut self, now: Instant) {
        while self.unacked.len() < TEXT_WINDOW {
            let Some(text) = self.pending.pop_front() else {
                return;
            };
            self.transmit_text(now, text);
        }
    }

    fn transmit_text(&mut self, now: Instant, text: String) {
        let State::Established(sec) = &mut self.state else {
            return;
        };
        let msg = self.next_msg;
        self.next_msg = self.next_msg.wrapping_add(1);
        let pkt = sec.seal_text(&mut self.clock, &mut *self.rng, msg, &text);
        self.transmits.push_back(pkt);
        self.unacked.push_back(Outgoing {
            msg,
            text,
            due: now + TEXT_RTO,
            rto: TEXT_RTO,
        });
    }

    pub(super) fn on_text(&mut self, plaintext: &[u8]) {
        let Some((head, body)) = plaintext.split_first_chunk::<4>() else {
            return self.drop_counted(Discard::Truncated);
        };
        let msg = u32::from_be_bytes(*head);
        let Ok(text) = std::str::from_utf8(body) else {
            return self.drop_counted(Discard::BadPadding);
        };
        // Deliver in order, once; hold early arrivals.
        if msg.wrapping_sub(self.next_expected) < (1 << 31) {
            if msg == self.next_expected {
                self.events.push_back(Event::Text(text.to_owned()));
                self.next_expected = self.next_expected.wrapping_add(1);
                while let Some(t) = self.early.remove(&self.next_expected) {
                    self.events.push_back(Event::Text(t));
                    self.next_expected = self.next_expected.wrapping_add(1);
                }
            } else if self.early.len() < TEXT_WINDOW {
                self.early.entry(msg).or_insert_with(|| text.to_owned());
            }
        }
        self.send_ack();
    }

    pub(super) fn send_ack(&mut self) {
        let State::Established(sec) = &mut self.state else {
            return;
        };
        // `next expected (4)`, then our last loss report on the
        // partner's audio (1, in 256ths) once there is one.
        let mut ack = self.next_expected.to_be_bytes().to_vec();
        ack.extend(sec.report);
        let out = seal_with(&mut sec.tx_ack, &mut self.clock, &mut *self.rng, &ack);
        self.transmits.push_back(out);
    }

    pub(super) fn on_ack(&mut self, now: Instant, plaintext: &[u8]) {
        let Some(head) = plaintext.first_chunk::<4>() else {
            return self.drop_counted(Discard::Truncated);
        };
        let next = u32::from_be_bytes(*head);
        if let Some(&fraction) = plaintext.get(4) {
            self.on_loss_report(fraction);
        }
        // Cumulative: everything before `next` arrived.
        self.unacked
            .retain(|o| next.wrapping_sub(o.msg).wrapping_sub(1) >= (1 << 31));
        self.flush_text(now);
    }
}
