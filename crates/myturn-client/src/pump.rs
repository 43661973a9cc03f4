//! A call's media plumbing, shared by line mode and the full-screen
//! interface: paces the input frames (WAV or microphone) out every 20 ms,
//! plays out or writes what arrives, and reports what the interface shows.

use std::path::PathBuf;

use myturn_media::session::Event as MediaEvent;
use myturn_media::wav;

use crate::call::Call;

/// Where a call's outgoing audio comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A WAV file (PCM16, resampled to the call rate), then silence.
    Wav(PathBuf),
    /// A microphone (`None`: the default one).
    #[cfg(feature = "audio")]
    Device(Option<String>),
    /// Nothing is sent.
    None,
}

/// Where a call's incoming audio goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// A WAV file at the call rate, written as frames arrive.
    Wav(PathBuf),
    /// A speaker (`None`: the default one).
    #[cfg(feature = "audio")]
    Device(Option<String>),
    /// Nowhere.
    None,
}

/// A call's media plumbing, shared by line mode and the full-screen
/// interface: paces the input frames out, writes what arrives.
pub(crate) struct Pump {
    pub(crate) call: Call,
    input: Vec<Vec<u8>>,
    next: usize,
    pub(crate) muted: bool,
    out: Option<wav::Writer>,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    /// Peak of the last received frame, 0..1.
    pub(crate) level: f64,
    /// Received audio, reordered and paced for playout; its counters give
    /// loss (RFC 3550) and interarrival jitter.
    jitter: myturn_media::jitter::JitterBuffer,
    #[cfg(feature = "audio")]
    capture: Option<myturn_media::audio::Capture>,
    #[cfg(feature = "audio")]
    playback: Option<myturn_media::audio::Playback>,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump")
            .field("sent", &self.sent)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// What the partner sent that the interface shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heard {
    Text(String),
    Failed(String),
    /// Nothing authentic from the partner for the peer timeout.
    PeerGone(String),
}

impl Pump {
    /// Opens the input and output for `call`; problems come back as
    /// warnings (the call goes on without that side of the audio).
    pub(crate) fn new(call: Call, input: &Input, output: &Output) -> (Pump, Vec<String>) {
        let mut warnings = Vec::new();
        let frames = match input {
            Input::Wav(p) => match wav::read(p, call.rate) {
                Ok(samples) => wav::frames(&samples, (call.rate / 50) as usize),
                Err(e) => {
                    warnings.push(format!("input wav: {e}"));
                    Vec::new()
                }
            },
            #[cfg(feature = "audio")]
            Input::Device(_) => Vec::new(),
            Input::None => Vec::new(),
        };
        #[cfg(feature = "audio")]
        let capture = match input {
            Input::Device(d) => match myturn_media::audio::start_capture(d.as_deref(), call.rate) {
                Ok(c) => Some(c),
                Err(e) => {
                    warnings.push(format!("microphone: {e}"));
                    None
                }
            },
            _ => None,
        };
        #[cfg(feature = "audio")]
        let playback = match output {
            Output::Device(d) => match myturn_media::audio::start_playback(d.as_deref(), call.rate)
            {
                Ok(p) => Some(p),
                Err(e) => {
                    warnings.push(format!("speaker: {e}"));
                    None
                }
            },
            _ => None,
        };
        let out = match output {
            Output::Wav(p) => match wav::Writer::create(p, call.rate) {
                Ok(w) => Some(w),
                Err(e) => {
                    warnings.push(format!("output wav: {e}"));
                    None
                }
            },
            #[cfg(feature = "audio")]
            Output::Device(_) => None,
            Output::None => None,
        };
        let frame_bytes = (call.rate / 50 * 2) as usize;
        let pump = Pump {
            call,
            input: frames,
            next: 0,
            muted: false,
            out,
            sent: 0,
            received: 0,
            level: 0.0,
            jitter: myturn_media::jitter::JitterBuffer::new(frame_bytes),
            #[cfg(feature = "audio")]
            capture,
            #[cfg(feature = "audio")]
            playback,
        };
        (pump, warnings)
    }

    /// Every 20 ms: the next input frame, unless muted.
    pub(crate) async fn tick(&mut self) {
        #[cfg(feature = "audio")]
        if let Some(c) = self.capture.as_ref() {
            let frames: Vec<Vec<u8>> = std::iter::from_fn(|| c.frames.try_recv().ok()).collect();
            for f in frames {
                if !self.muted && self.call.media.send_audio(f).await.is_ok() {
                    self.sent += 1;
                }
            }
        }
        // Playout: one frame per tick once the buffer has started (to the
        // speaker when there is one; the WAV file takes frames as they
        // arrive, unaltered).
        let _frame = self.jitter.pop(std::time::Instant::now());
        #[cfg(feature = "audio")]
        if let (Some(p), Some(f)) = (self.playback.as_ref(), _frame) {
            p.play(f);
        }
        if let Some(f) = self.input.get(self.next) {
            self.next += 1;
            if !self.muted && self.call.media.send_audio(f.clone()).await.is_ok() {
                self.sent += 1;
            }
        }
    }

    pub(crate) async fn set_muted(&mut self, m: bool) {
        self.muted = m;
        let _ = self.call.media.set_muted(m).await;
    }

    /// A media event: audio is written out, text and failures returned.
    pub(crate) fn on_media(&mut self, ev: Option<MediaEvent>) -> Option<Heard> {
        match ev? {
            MediaEvent::Audio { seq, pcm } => {
                self.received += 1;
                self.jitter
                    .push(std::time::Instant::now(), seq, pcm.clone());
                let peak = pcm
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs())
                    .max()
                    .unwrap_or(0);
                self.level = f64::from(peak) / 32768.0;
                if let Some(w) = self.out.as_mut() {
                    let _ = w.write_frame(&pcm);
                }
                None
            }
            MediaEvent::Text(t) => Some(Heard::Text(t)),
            MediaEvent::Failed(f @ myturn_media::session::Failure::PeerSilent(_)) => {
                Some(Heard::PeerGone(f.to_string()))
            }
            MediaEvent::Failed(f) => Some(Heard::Failed(f.to_string())),
            MediaEvent::Established { .. } => None,
        }
    }

    /// Loss (percent, RFC 3550 sequence span) and interarrival jitter
    /// (ms) of what was received.
    pub(crate) fn quality(&self) -> (f64, f64) {
        let st = self.jitter.stats();
        let loss = 100.0 * st.lost as f64 / (st.received + st.lost).max(1) as f64;
        (loss, st.jitter_ms)
    }

    /// Closes the output file.
    pub(crate) fn finish(self) -> Option<String> {
        self.out
            .and_then(|w| w.finalize().err().map(|e| format!("output wav: {e}")))
    }
}
