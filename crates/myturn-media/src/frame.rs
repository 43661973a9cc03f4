//! The plaintexts of sealed audio and of the codec capability list the
//! handshake carries (`docs/protocol.md`, "Audio plaintext").
//!
//! An audio plaintext names its codec and its frame's place in time, and
//! may carry copies of earlier frames (RFC 2198's idea, inside the seal):
//! `codec (1) ‖ frame (2) ‖ n (1) ‖ n × (distance (1) ‖ length (2)) ‖ n
//! redundant frames ‖ the primary frame`. `frame` is the low 16 bits of
//! the frame index: 20 ms frames since the stream began, counting those
//! DTX did not send, so the receiver plays each frame at its time (a
//! packet's sequence number counts only what was sent). A redundant frame
//! at distance `d` is frame `frame − d`.

use crate::codec::Codec;

/// Most redundant frames one packet carries.
pub const MAX_REDUNDANT: usize = 3;
/// The plaintext's header: codec, frame, count.
const HEAD: usize = 4;
/// Each copy's head: distance, length.
const COPY_HEAD: usize = 3;

/// One opened audio plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPayload<'a> {
    /// The codec of every frame in it.
    pub codec: Codec,
    /// The low 16 bits of the primary frame's index.
    pub frame: u16,
    /// The primary frame.
    pub primary: &'a [u8],
    /// Earlier frames: (distance, bytes).
    pub redundant: Vec<(u8, &'a [u8])>,
}

/// Why an audio plaintext is unusable (an authentic packet from a peer
/// that does not speak this format; counted, never played).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its header says.
    #[error("truncated audio plaintext")]
    Truncated,
    /// An unknown codec byte, too many redundant frames or distance 0.
    #[error("unknown audio format")]
    Unknown,
}

/// Appends an audio plaintext: `codec`, the redundant `(distance, frame)`
/// pairs (at most [`MAX_REDUNDANT`]; more are left out), then `primary`.
/// Returns how many copies it carries.
pub fn write_audio(
    codec: Codec,
    frame: u64,
    primary: &[u8],
    redundant: &[(u8, &[u8])],
    out: &mut Vec<u8>,
) -> usize {
    // Copies that would take the plaintext past what a packet carries
    // are left out (PCM16 at 16 kHz has room for none).
    let mut room = crate::packet::MAX_PLAINTEXT.saturating_sub(HEAD + primary.len());
    let mut red: Vec<&(u8, &[u8])> = Vec::new();
    for r in redundant
        .iter()
        .filter(|(d, f)| *d > 0 && f.len() <= usize::from(u16::MAX))
        .take(MAX_REDUNDANT)
    {
        let need = r.1.len() + COPY_HEAD;
        if need > room {
            break;
        }
        room -= need;
        red.push(r);
    }
    out.push(codec.byte());
    out.extend_from_slice(&((frame & 0xffff) as u16).to_be_bytes());
    out.push(red.len() as u8);
    for (d, f) in &red {
        out.push(*d);
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
    }
    for (_, f) in &red {
        out.extend_from_slice(f);
    }
    out.extend_from_slice(primary);
    red.len()
}

/// Copies of earlier frames of `len` bytes that fit beside a primary of
/// the same size (PCM16: 2 at 8 kHz, none at 16 kHz).
pub fn copies_that_fit(len: usize) -> usize {
    (crate::packet::MAX_PLAINTEXT.saturating_sub(HEAD + len) / (len + COPY_HEAD)).min(MAX_REDUNDANT)
}

/// Reads an audio plaintext.
pub fn read_audio(pt: &[u8]) -> Result<AudioPayload<'_>, FrameError> {
    let (&c, rest) = pt.split_first().ok_or(FrameError::Truncated)?;
    let codec = Codec::from_byte(c).ok_or(FrameError::Unknown)?;
    let (f, rest) = rest.split_first_chunk::<2>().ok_or(FrameError::Truncated)?;
    let frame = u16::from_be_bytes(*f);
    let (&n, mut rest) = rest.split_first().ok_or(FrameError::Truncated)?;
    let n = usize::from(n);
    if n > MAX_REDUNDANT {
        return Err(FrameError::Unknown);
    }
    let mut heads = Vec::with_capacity(n);
    for _ in 0..n {
        let (h, r) = rest.split_first_chunk::<3>().ok_or(FrameError::Truncated)?;
        if h[0] == 0 {
            return Err(FrameError::Unknown);
        }
        heads.push((h[0], usize::from(u16::from_be_bytes([h[1], h[2]]))));
        rest = r;
    }
    let mut redundant = Vec::with_capacity(n);
    for (d, len) in heads {
        let (f, r) = rest.split_at_checked(len).ok_or(FrameError::Truncated)?;
        redundant.push((d, f));
        rest = r;
    }
    Ok(AudioPayload {
        codec,
        frame,
        primary: rest,
        redundant,
    })
}

/// The full frame index of a received 16-bit `frame`: the one nearest to
/// `near` (the highest index seen so far), as RTP extends its sequence
/// numbers.
pub fn unwrap_frame(frame: u16, near: u64) -> u64 {
    let base = near & !0xffff;
    [
        base.checked_sub(0x1_0000),
        Some(base),
        base.checked_add(0x1_0000),
    ]
    .into_iter()
    .flatten()
    .map(|b| b | u64::from(frame))
    .min_by_key(|&c| c.abs_diff(near))
    .unwrap_or(u64::from(frame))
}

/// The capability list a side appends to its Commit or DHPart1:
/// `count (1) ‖ codec bytes`, most preferred first.
pub fn write_caps(codecs: &[Codec], out: &mut Vec<u8>) {
    let list: Vec<u8> = codecs.iter().take(16).map(|c| c.byte()).collect();
    out.push(list.len() as u8);
    out.extend_from_slice(&list);
}

/// Reads a capability list (unknown codec bytes are skipped); `None` if
/// malformed. An empty tail (a peer that lists nothing) means PCM16 only.
pub fn read_caps(tail: &[u8]) -> Option<Vec<Codec>> {
    let Some((&n, rest)) = tail.split_first() else {
        return Some(vec![Codec::Pcm16]);
    };
    if rest.len() != usize::from(n) {
        return None;
    }
    Some(rest.iter().filter_map(|&b| Codec::from_byte(b)).collect())
}

/// The codec both sides use: the initiator's most preferred one that the
/// responder also lists; PCM16, which every side speaks, otherwise.
pub fn choose(initiator: &[Codec], responder: &[Codec]) -> Codec {
    initiator
        .iter()
        .find(|c| responder.contains(c))
        .copied()
        .unwrap_or(Codec::Pcm16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_round_trips_with_and_without_redundancy() {
        let mut out = Vec::new();
        write_audio(Codec::Pcm16, 0x1_0203, &[1, 2, 3, 4], &[], &mut out);
        assert_eq!(out, [1, 2, 3, 0, 1, 2, 3, 4]);
        let p = read_audio(&out).unwrap();
        assert_eq!(
            (p.codec, p.frame, p.primary, p.redundant.len()),
            (Codec::Pcm16, 0x0203, &[1, 2, 3, 4][..], 0)
        );

        let mut out = Vec::new();
        let red: [(u8, &[u8]); 2] = [(1, &[7; 3]), (2, &[6; 2])];
        write_audio(Codec::Opus, 7, &[9; 5], &red, &mut out);
        assert_eq!(&out[..10], &[2, 0, 7, 2, 1, 0, 3, 2, 0, 2]);
        let p = read_audio(&out).unwrap();
        assert_eq!((p.codec, p.frame), (Codec::Opus, 7));
        assert_eq!(p.primary, &[9; 5]);
        assert_eq!(p.redundant, vec![(1, &[7u8; 3][..]), (2, &[6u8; 2][..])]);
    }

    #[test]
    fn copies_that_do_not_fit_a_packet_are_left_out() {
        let big = [7u8; 640];
        let red: [(u8, &[u8]); 2] = [(1, &big), (2, &big)];
        let mut out = Vec::new();
        assert_eq!(write_audio(Codec::Pcm16, 3, &big, &red, &mut out), 0);
        assert_eq!(read_audio(&out).unwrap().redundant.len(), 0);
        assert_eq!(copies_that_fit(big.len()), 0);
        let small = [7u8; 320];
        let red: [(u8, &[u8]); 3] = [(1, &small), (2, &small), (3, &small)];
        let mut out = Vec::new();
        assert_eq!(write_audio(Codec::Pcm16, 3, &small, &red, &mut out), 2);
        assert_eq!(read_audio(&out).unwrap().redundant.len(), 2);
        assert_eq!(copies_that_fit(small.len()), 2);
        assert!(out.len() <= crate::packet::MAX_PLAINTEXT);
    }

    #[test]
    fn bad_audio_plaintexts_are_errors_not_panics() {
        assert_eq!(read_audio(&[]), Err(FrameError::Truncated));
        assert_eq!(read_audio(&[1]), Err(FrameError::Truncated));
        assert_eq!(read_audio(&[9, 0, 0, 0]), Err(FrameError::Unknown));
        assert_eq!(read_audio(&[1, 0]), Err(FrameError::Truncated));
        assert_eq!(read_audio(&[1, 0, 0, 4]), Err(FrameError::Unknown));
        assert_eq!(
            read_audio(&[1, 0, 0, 1, 0, 0, 1, 5]),
            Err(FrameError::Unknown)
        );
        assert_eq!(
            read_audio(&[1, 0, 0, 1, 1, 0, 9, 5]),
            Err(FrameError::Truncated)
        );
        assert_eq!(read_audio(&[1, 0, 0, 1, 1]), Err(FrameError::Truncated));
    }

    #[test]
    fn frame_indices_unwrap_near_the_highest_seen() {
        assert_eq!(unwrap_frame(5, 3), 5);
        assert_eq!(unwrap_frame(0xfffe, 0x1_0001), 0xfffe);
        assert_eq!(unwrap_frame(2, 0xfffe), 0x1_0002);
        assert_eq!(unwrap_frame(0xffff, 0), 0xffff);
    }

    #[test]
    fn capabilities_and_the_choice() {
        let mut out = Vec::new();
        write_caps(&[Codec::Opus, Codec::Pcm16], &mut out);
        assert_eq!(out, [2, 2, 1]);
        assert_eq!(read_caps(&out), Some(vec![Codec::Opus, Codec::Pcm16]));
        assert_eq!(read_caps(&[]), Some(vec![Codec::Pcm16]));
        assert_eq!(read_caps(&[3, 1]), None);
        assert_eq!(read_caps(&[2, 1, 77]), Some(vec![Codec::Pcm16]));
        let both = [Codec::Opus, Codec::Pcm16];
        assert_eq!(choose(&both, &both), Codec::Opus);
        assert_eq!(choose(&both, &[Codec::Pcm16]), Codec::Pcm16);
        assert_eq!(choose(&[Codec::Pcm16], &both), Codec::Pcm16);
        assert_eq!(choose(&[], &[]), Codec::Pcm16);
    }
}
