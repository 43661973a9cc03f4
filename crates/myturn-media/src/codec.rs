//! The two audio codecs a call may use, as plain state machines: PCM16
//! (the design's codec, L16 in SDP) and Opus (libopus, in-band FEC and DTX).
//!
//! Which one a call uses is agreed inside the key agreement
//! ([`crate::session`]), never from SDP: a back-to-back agent may renumber
//! payload types or strip `a=fmtp`. Every sealed audio frame names its
//! codec, so a receiver decodes what it got whatever the SDP said.

#[cfg(feature = "opus")]
use opus::{Application, Bandwidth, Bitrate, Channels};

/// A codec, as named in the handshake's capability list and in every
/// sealed audio frame (`docs/protocol.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// 16-bit linear PCM, little-endian, at the call rate.
    Pcm16 = 1,
    /// Opus (RFC 6716), one 20 ms frame per packet.
    Opus = 2,
}

impl Codec {
    /// From its byte.
    pub fn from_byte(b: u8) -> Option<Codec> {
        match b {
            1 => Some(Codec::Pcm16),
            2 => Some(Codec::Opus),
            _ => None,
        }
    }

    /// Its byte.
    pub fn byte(self) -> u8 {
        self as u8
    }

    /// The codecs this build can encode and decode, most preferred
    /// first: Opus only with the `opus` feature.
    pub const fn built() -> &'static [Codec] {
        #[cfg(feature = "opus")]
        {
            &[Codec::Opus, Codec::Pcm16]
        }
        #[cfg(not(feature = "opus"))]
        {
            &[Codec::Pcm16]
        }
    }

    /// A short name for stats.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcm16 => "pcm16",
            Codec::Opus => "opus",
        }
    }
}

/// Opus bit rate without FEC, and with it narrowband.
pub const OPUS_BITRATE: i32 = 24_000;
/// Opus bit rate with FEC, wideband: the FEC's bits would otherwise come
/// out of the speech's (measured: PESQ WB at 5 % loss 2.72 at 24 kbit/s,
/// 2.97 at 28), within the 64 kbit/s all-in goal.
pub const OPUS_BITRATE_WB_FEC: i32 = 26_000;
/// Largest encoded frame kept (Opus's own limit for one 20 ms frame is far
/// above what the rates here produce).
#[cfg(feature = "opus")]
const MAX_ENCODED: usize = 400;

/// Why a codec could not be set up or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// libopus refused a call (a bad rate or a corrupt packet).
    #[error("opus: {0}")]
    Opus(String),
    /// A PCM16 frame of the wrong length.
    #[error("a PCM16 frame of {0} bytes")]
    BadLength(usize),
}

#[cfg(feature = "opus")]
impl From<opus::Error> for CodecError {
    fn from(e: opus::Error) -> Self {
        CodecError::Opus(e.to_string())
    }
}

/// Encodes 20 ms frames of PCM16 at the call rate.
pub struct Encoder {
    codec: Codec,
    #[cfg(feature = "opus")]
    opus: Option<opus::Encoder>,
    #[cfg(not(feature = "opus"))]
    opus: Option<NoOpus>,
    samples: usize,
}

/// What stands for libopus in a build without it: never made.
#[cfg(not(feature = "opus"))]
#[derive(Debug)]
enum NoOpus {}

#[cfg(not(feature = "opus"))]
impl NoOpus {
    fn unreachable<T>(&mut self) -> T {
        match *self {}
    }
}

#[cfg(not(feature = "opus"))]
fn without_opus() -> CodecError {
    CodecError::Opus("this build has no Opus (the `opus` feature)".into())
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder for `codec` at `rate` (8000 or 16000).
    pub fn new(codec: Codec, rate: u32) -> Result<Encoder, CodecError> {
        let opus = match codec {
            Codec::Pcm16 => None,
            #[cfg(not(feature = "opus"))]
            Codec::Opus => return Err(without_opus()),
            #[cfg(feature = "opus")]
            Codec::Opus => {
                let mut e = opus::Encoder::new(rate, Channels::Mono, Application::Voip)?;
                e.set_bitrate(Bitrate::Bits(OPUS_BITRATE))?;
                // FEC from the first loss report that asks for it.
                e.set_inband_fec(false)?;
                e.set_packet_loss_perc(0)?;
                e.set_dtx(true)?;
                e.set_max_bandwidth(if rate >= 16_000 {
                    Bandwidth::Wideband
                } else {
                    Bandwidth::Narrowband
                })?;
                Some(e)
            }
        };
        Ok(Encoder {
            codec,
            opus,
            samples: (rate / 50) as usize,
        })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Bytes of one frame as PCM16 (what PCM16 sends per packet).
    pub fn frame_bytes(&self) -> usize {
        self.samples * 2
    }

    /// Tells Opus the loss the partner reports (percent): its in-band
    /// FEC is on from 1 % and spends what that loss needs (wideband, at
    /// a higher bit rate).
    pub fn set_expected_loss(&mut self, percent: u8) {
        let wideband = self.samples >= 320;
        #[cfg(not(feature = "opus"))]
        let _ = (percent, wideband);
        #[cfg(feature = "opus")]
        if let Some(e) = self.opus.as_mut() {
            let fec = percent > 0;
            let _ = e.set_inband_fec(fec);
            let _ = e.set_packet_loss_perc(i32::from(percent.min(100)));
            let bits = if fec && wideband {
                OPUS_BITRATE_WB_FEC
            } else {
                OPUS_BITRATE
            };
            let _ = e.set_bitrate(Bitrate::Bits(bits));
        }
    }

    /// Sets the Opus bit rate (no effect on PCM16).
    pub fn set_bitrate(&mut self, bits: i32) {
        #[cfg(feature = "opus")]
        if let Some(e) = self.opus.as_mut() {
            let _ = e.set_bitrate(Bitrate::Bits(bits));
        }
        #[cfg(not(feature = "opus"))]
        let _ = bits;
    }

    /// One frame of PCM16 little-endian bytes in, the encoded frame out.
    /// An Opus frame of one or two bytes is DTX: nothing worth sending.
    pub fn encode(&mut self, pcm: &[u8]) -> Result<Vec<u8>, CodecError> {
        if pcm.len() != self.samples * 2 {
            return Err(CodecError::BadLength(pcm.len()));
        }
        match self.opus.as_mut() {
            None => Ok(pcm.to_vec()),
            #[cfg(feature = "opus")]
            Some(e) => {
                let samples = to_samples(pcm);
                Ok(e.encode_vec(&samples, MAX_ENCODED)?)
            }
            #[cfg(not(feature = "opus"))]
            Some(e) => e.unreachable(),
        }
    }
}

/// Decodes frames, conceals lost ones and recovers them from FEC.
pub struct Decoder {
    codec: Codec,
    #[cfg(feature = "opus")]
    opus: Option<opus::Decoder>,
    #[cfg(not(feature = "opus"))]
    opus: Option<NoOpus>,
    samples: usize,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for `codec` at `rate`.
    pub fn new(codec: Codec, rate: u32) -> Result<Decoder, CodecError> {
        let opus = match codec {
            Codec::Pcm16 => None,
            #[cfg(feature = "opus")]
            Codec::Opus => Some(opus::Decoder::new(rate, Channels::Mono)?),
            #[cfg(not(feature = "opus"))]
            Codec::Opus => return Err(without_opus()),
        };
        Ok(Decoder {
            codec,
            opus,
            samples: (rate / 50) as usize,
        })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Samples per frame.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Decodes one frame into samples.
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<i16>, CodecError> {
        match self.opus.as_mut() {
            None if data.len() == self.samples * 2 => Ok(to_samples(data)),
            None => Err(CodecError::BadLength(data.len())),
            #[cfg(feature = "opus")]
            Some(d) => {
                let mut out = vec![0i16; self.samples];
                let n = d.decode(data, &mut out, false)?;
                out.truncate(n);
                out.resize(self.samples, 0);
                Ok(out)
            }
            #[cfg(not(feature = "opus"))]
            Some(d) => d.unreachable(),
        }
    }

    /// The lost frame before `next`, rebuilt from `next`'s in-band FEC.
    /// `None` for PCM16 (no FEC) or when `next` carries none.
    pub fn recover(&mut self, next: &[u8]) -> Option<Vec<i16>> {
        let samples = self.samples;
        opus_decode(self.opus.as_mut()?, next, true, samples).filter(|out| out.len() == samples)
    }

    /// Opus's own concealment of a lost frame. `None` for PCM16, which
    /// the playout conceals itself (`crate::conceal`).
    pub fn conceal(&mut self) -> Option<Vec<i16>> {
        let samples = self.samples;
        let out = opus_decode(self.opus.as_mut()?, &[], false, samples);
        let mut out = out.unwrap_or_default();
        out.resize(samples, 0);
        Some(out)
    }
}

/// One libopus decode (`fec`: rebuild the frame before `data` from its
/// in-band FEC; empty `data`: conceal a loss); `None` if libopus refused.
#[cfg(feature = "opus")]
fn opus_decode(d: &mut opus::Decoder, data: &[u8], fec: bool, samples: usize) -> Option<Vec<i16>> {
    let mut out = vec![0i16; samples];
    let n = d.decode(data, &mut out, fec).ok()?;
    out.truncate(n);
    Some(out)
}

#[cfg(not(feature = "opus"))]
fn opus_decode(d: &mut NoOpus, _: &[u8], _: bool, _: usize) -> Option<Vec<i16>> {
    d.unreachable()
}

/// PCM16 little-endian bytes to samples.
pub fn to_samples(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2)
        .map(|c| {
            i16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .collect()
}

/// Samples to PCM16 little-endian bytes.
pub fn to_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, frames: usize) -> Vec<Vec<u8>> {
        let n = (rate / 50) as usize;
        (0..frames)
            .map(|f| {
                let s: Vec<i16> = (0..n)
                    .map(|i| {
                        let t = (f * n + i) as f32 / rate as f32;
                        ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16
                    })
                    .collect();
                to_bytes(&s)
            })
            .collect()
    }

    #[test]
    fn pcm16_is_the_identity() {
        let mut e = Encoder::new(Codec::Pcm16, 8000).unwrap();
        let mut d = Decoder::new(Codec::Pcm16, 8000).unwrap();
        for f in tone(8000, 5) {
            let enc = e.encode(&f).unwrap();
            assert_eq!(enc, f);
            assert_eq!(to_bytes(&d.decode(&enc).unwrap()), f);
        }
        assert_eq!(d.recover(&[0; 320]), None);
        assert!(e.encode(&[0; 10]).is_err());
        assert!(d.decode(&[0; 10]).is_err());
    }

    #[test]
    #[cfg(feature = "opus")]
    fn opus_round_trips_speech_band_audio_at_both_rates() {
        for rate in [8000, 16_000] {
            let mut e = Encoder::new(Codec::Opus, rate).unwrap();
            let mut d = Decoder::new(Codec::Opus, rate).unwrap();
            let frames = tone(rate, 50);
            let mut out = Vec::new();
            let mut bytes = 0;
            for f in &frames {
                let enc = e.encode(f).unwrap();
                bytes += enc.len();
                out.extend(d.decode(&enc).unwrap());
            }
            // ≤ 24 kbit/s: at most 60 bytes a frame on average.
            assert!(bytes / frames.len() <= 64, "{rate}: {bytes}");
            // The decoded tone has the input's energy (delay aside).
            let energy = |s: &[i16]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
            let input: Vec<i16> = frames.iter().flat_map(|f| to_samples(f)).collect();
            let (a, b) = (energy(&input[4000..]), energy(&out[4000..]));
            assert!((b / a - 1.0).abs() < 0.3, "{rate}: {a} vs {b}");
            // FEC of a frame rebuilds the one before it; concealment
            // gives a frame.
            let enc = e.encode(&frames[3]).unwrap();
            assert_eq!(d.recover(&enc).map(|f| f.len()), Some((rate / 50) as usize));
            assert_eq!(d.conceal().map(|f| f.len()), Some((rate / 50) as usize));
        }
    }
}
