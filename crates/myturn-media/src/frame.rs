//! The plaintexts of sealed audio and of the codec capability list the
//! handshake carries (`docs/protocol.md`, "Audio plaintext").
//!
//! An audio plaintext names its codec and may carry copies of earlier
//! frames (RFC 2198's idea, inside the seal):
//! `codec (1) ‖ n (1) ‖ n × (distance (1) ‖ length (2)) ‖ n redundant
//! frames ‖ the primary frame`. A redundant frame at distance `d` is the
//! frame whose end-to-end sequence number is this packet's minus `d`.

use crate::codec::Codec;

/// Most redundant frames one packet carries.
pub const MAX_REDUNDANT: usize = 3;

/// One opened audio plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPayload<'a> {
    /// The codec of every frame in it.
    pub codec: Codec,
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
pub fn write_audio(codec: Codec, primary: &[u8], redundant: &[(u8, &[u8])], out: &mut Vec<u8>) {
    let red: Vec<&(u8, &[u8])> = redundant
        .iter()
        .filter(|(d, f)| *d > 0 && f.len() <= usize::from(u16::MAX))
        .take(MAX_REDUNDANT)
        .collect();
    out.push(codec.byte());
    out.push(red.len() as u8);
    for (d, f) in &red {
        out.push(*d);
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
    }
    for (_, f) in &red {
        out.extend_from_slice(f);
    }
    out.extend_from_slice(primary);
}

/// Reads an audio plaintext.
pub fn read_audio(pt: &[u8]) -> Result<AudioPayload<'_>, FrameError> {
    let (&c, rest) = pt.split_first().ok_or(FrameError::Truncated)?;
    let codec = Codec::from_byte(c).ok_or(FrameError::Unknown)?;
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
        primary: rest,
        redundant,
    })
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
        write_audio(Codec::Pcm16, &[1, 2, 3, 4], &[], &mut out);
        assert_eq!(out, [1, 0, 1, 2, 3, 4]);
        let p = read_audio(&out).unwrap();
        assert_eq!(
            (p.codec, p.primary, p.redundant.len()),
            (Codec::Pcm16, &[1, 2, 3, 4][..], 0)
        );

        let mut out = Vec::new();
        write_audio(
            Codec::Opus,
            &[9; 5],
            &[(1, &[7; 3]), (2, &[6; 2])],
            &mut out,
        );
        assert_eq!(&out[..8], &[2, 2, 1, 0, 3, 2, 0, 2]);
        let p = read_audio(&out).unwrap();
        assert_eq!(p.codec, Codec::Opus);
        assert_eq!(p.primary, &[9; 5]);
        assert_eq!(p.redundant, vec![(1, &[7u8; 3][..]), (2, &[6u8; 2][..])]);
    }

    #[test]
    fn bad_audio_plaintexts_are_errors_not_panics() {
        assert_eq!(read_audio(&[]), Err(FrameError::Truncated));
        assert_eq!(read_audio(&[1]), Err(FrameError::Truncated));
        assert_eq!(read_audio(&[9, 0]), Err(FrameError::Unknown));
        assert_eq!(read_audio(&[1, 4]), Err(FrameError::Unknown));
        assert_eq!(read_audio(&[1, 1, 0, 0, 1, 5]), Err(FrameError::Unknown));
        assert_eq!(read_audio(&[1, 1, 1, 0, 9, 5]), Err(FrameError::Truncated));
        assert_eq!(read_audio(&[1, 1, 1]), Err(FrameError::Truncated));
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
