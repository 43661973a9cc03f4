//! The session's audio: encoding with the agreed codec, redundancy of
//! earlier frames inside the seal, and opened audio as events.

use crate::codec::Codec;
use crate::frame::{read_audio, unwrap_frame, write_audio};
use crate::loss::Protection;
use crate::packet::Discard;

use super::{seal_with, Event, Secure, SendError, Session, State, Stats};

/// Puts `p` into effect. PCM16's copies are capped by what fits in a
/// packet (none at 16 kHz), so the stats say what the packets carry.
fn apply(sec: &mut Secure, stats: &mut Stats, p: Protection) {
    let fit = match sec.encoder.codec() {
        Codec::Pcm16 => crate::frame::copies_that_fit(sec.encoder.frame_bytes()),
        Codec::Opus => crate::frame::MAX_REDUNDANT,
    };
    sec.redundancy = p.redundancy.min(fit);
    sec.encoder.set_expected_loss(p.expected_loss);
    stats.redundancy = sec.redundancy as u8;
    stats.fec_loss = p.expected_loss;
}

impl Session {
    /// Fixes how many earlier frames each audio packet carries (0 to
    /// [`crate::frame::MAX_REDUNDANT`]) and the loss (percent) Opus's FEC
    /// is to expect, instead of following the partner's loss reports
    /// (what it does by default, [`crate::loss`]).
    pub fn set_protection(&mut self, redundancy: usize, expected_loss: u8) {
        if let State::Established(sec) | State::Confirming(sec) = &mut self.state {
            sec.auto = false;
            apply(
                sec,
                &mut self.stats,
                Protection {
                    redundancy,
                    expected_loss,
                },
            );
        }
    }

    /// The partner reported `fraction` (256ths) of our audio lost.
    pub(super) fn on_loss_report(&mut self, fraction: u8) {
        if let State::Established(sec) = &mut self.state {
            self.stats.peer_loss = fraction;
            let p = sec.adapter.on_report(fraction, sec.encoder.codec());
            if sec.auto {
                apply(sec, &mut self.stats, p);
            }
        }
    }

    /// The keep-alive's fresh loss report on the partner's audio (0 while
    /// the partner is silent, once it has spoken).
    pub(super) fn take_report(&mut self) {
        if let State::Established(sec) = &mut self.state {
            sec.report = sec.meter.report().or(sec.report.map(|_| 0));
        }
    }

    /// Encodes with the agreed codec, seals and queues one 20 ms audio
    /// frame (PCM16 little-endian at the call rate). A frame Opus's DTX
    /// finds silent is not sent (no packet, no sequence number used).
    pub fn send_audio(&mut self, pcm: &[u8]) -> Result<(), SendError> {
        let State::Established(sec) = &mut self.state else {
            return Err(match self.state {
                State::Failed => SendError::Failed,
                _ => SendError::NotEstablished,
            });
        };
        let codec = sec.encoder.codec();
        let data = match sec.encoder.encode(pcm) {
            Ok(d) => d,
            Err(_) => return Err(SendError::BadAudio),
        };
        self.clock.ts = self.clock.ts.wrapping_add(self.cfg.samples_per_frame);
        let frame = sec.tx_frame;
        sec.tx_frame += 1;
        if codec == Codec::Opus && data.len() <= 2 {
            self.stats.dtx_frames += 1;
            return Ok(());
        }
        let red: Vec<(u8, &[u8])> = sec
            .sent_frames
            .iter()
            .rev()
            .take(sec.redundancy)
            .filter_map(|(s, f)| Some((u8::try_from(frame.checked_sub(*s)?).ok()?, f.as_slice())))
            .collect();
        let mut pt = Vec::with_capacity(data.len() * (1 + red.len()) + 16);
        let carried = write_audio(codec, frame, &data, &red, &mut pt);
        self.stats.redundant_sent += carried as u64;
        let out = seal_with(&mut sec.tx_audio, &mut self.clock, &mut *self.rng, &pt);
        if sec.sent_frames.len() >= crate::frame::MAX_REDUNDANT {
            sec.sent_frames.pop_front();
        }
        sec.sent_frames.push_back((frame, data));
        self.stats.audio_bytes_sent += out.len() as u64;
        self.transmits.push_back(out);
        self.stats.audio_sent += 1;
        Ok(())
    }

    /// An opened audio plaintext: its primary frame and any redundant
    /// copies become [`Event::Audio`]s.
    pub(super) fn on_audio(&mut self, seq: u64, wire_len: usize, plaintext: &[u8]) {
        let Ok(p) = read_audio(plaintext) else {
            return self.drop_counted(Discard::BadFormat);
        };
        let (State::Established(sec) | State::Confirming(sec)) = &mut self.state else {
            return;
        };
        sec.meter.on_packet(seq);
        let frame = unwrap_frame(p.frame, sec.rx_frame.unwrap_or(u64::from(p.frame)));
        sec.rx_frame = Some(sec.rx_frame.map_or(frame, |f| f.max(frame)));
        self.stats.audio_received += 1;
        self.stats.audio_bytes_received += wire_len as u64;
        self.events.push_back(Event::Audio {
            seq,
            frame,
            codec: p.codec,
            data: p.primary.to_vec(),
            redundant: false,
        });
        for (d, f) in p.redundant {
            if let Some(at) = frame.checked_sub(u64::from(d)) {
                self.events.push_back(Event::Audio {
                    seq,
                    frame: at,
                    codec: p.codec,
                    data: f.to_vec(),
                    redundant: true,
                });
            }
        }
    }
}
