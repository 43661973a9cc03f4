//! A call's media plumbing, shared by line mode and the full-screen
//! interface: paces the input frames (WAV or microphone) out every 20 ms,
//! and every 20 ms takes one frame from the one playout path
//! ([`myturn_media::playout`]) for the speaker and the output WAV alike,
//! so a recording is what the user heard, as long as the call; and
//! reports what the interface shows.

use std::path::PathBuf;

use myturn_media::codec::to_bytes;
use myturn_media::playout::{Playout, PlayoutStats};
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
    /// A WAV file at the call rate: the playout, 20 ms per 20 ms of call
    /// (concealed frames in place, silence while nothing plays).
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
    started: std::time::Instant,
    /// Peak of the last played frame, 0..1.
    pub(crate) level: f64,
    /// Received audio: reordered, paced, decoded, recovered or concealed;
    /// its counters give loss (RFC 3550), jitter, concealment and delay.
    playout: Playout,
    #[cfg(feature = "audio")]
    capture: Option<myturn_media::audio::Capture>,
    #[cfg(feature = "audio")]
    playback: Option<myturn_media::audio::Playback>,
    /// Echo cancellation, noise suppression and gain control, when both
    /// sides are sound devices (and not turned off).
    #[cfg(feature = "audio")]
    echo: Option<myturn_media::echo::EchoCanceller>,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump")
            .field("sent", &self.sent)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// A call's sound, as the interface shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Quality {
    /// The codec agreed end to end.
    pub(crate) codec: &'static str,
    /// What this side sends, all headers included, kbit/s.
    pub(crate) kbps: f64,
    /// Received frames lost on the network (RFC 3550), percent.
    pub(crate) loss_percent: f64,
    /// Received frames lost on the network (RFC 3550), and arrived after
    /// their playout time.
    pub(crate) lost: u64,
    pub(crate) late: u64,
    /// Interarrival jitter, ms.
    pub(crate) jitter_ms: f64,
    /// Lost frames concealed.
    pub(crate) concealed: u64,
    /// Lost frames rebuilt (FEC, redundancy).
    pub(crate) recovered: u64,
    /// Playout delay, ms.
    pub(crate) delay_ms: f64,
    /// Quiet frames left out to bring the delay down.
    pub(crate) trimmed: u64,
    /// The loss the partner reports on what we send, percent.
    pub(crate) peer_loss_percent: f64,
    /// Our protection now: earlier frames per packet, Opus FEC's
    /// expected loss (percent).
    pub(crate) protection: (u8, u8),
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
    /// warnings (the call goes on without that side of the audio). With
    /// `processing`, a microphone and a speaker get echo cancellation,
    /// noise suppression and gain control (WAV files never do).
    pub(crate) fn new(
        call: Call,
        input: &Input,
        output: &Output,
        processing: bool,
    ) -> (Pump, Vec<String>) {
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
        #[cfg(feature = "audio")]
        let echo = match (&capture, &playback, processing) {
            (Some(_), Some(_), true) => {
                use myturn_media::echo::{EchoCanceller, Processing};
                match EchoCanceller::new(call.rate, Processing::ALL) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        warnings.push(format!("echo cancellation off: {e}"));
                        None
                    }
                }
            }
            _ => None,
        };
        #[cfg(not(feature = "audio"))]
        let _ = processing;
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
        let pump = Pump {
            playout: Playout::new(call.rate),
            call,
            input: frames,
            next: 0,
            muted: false,
            out,
            sent: 0,
            received: 0,
            started: std::time::Instant::now(),
            level: 0.0,
            #[cfg(feature = "audio")]
            capture,
            #[cfg(feature = "audio")]
            playback,
            #[cfg(feature = "audio")]
            echo,
        };
        (pump, warnings)
    }

    /// Every 20 ms: the next input frame, unless muted.
    pub(crate) async fn tick(&mut self) {
        #[cfg(feature = "audio")]
        if let Some(c) = self.capture.as_ref() {
            let frames: Vec<Vec<u8>> = std::iter::from_fn(|| c.frames.try_recv().ok()).collect();
            for mut f in frames {
                if let Some(e) = self.echo.as_mut() {
                    let mut pcm = myturn_media::codec::to_samples(&f);
                    e.capture(&mut pcm);
                    f = to_bytes(&pcm);
                }
                if !self.muted && self.call.media.send_audio(f).await.is_ok() {
                    self.sent += 1;
                }
            }
        }
        // Playout: one frame per tick, to the speaker and the WAV file
        // alike.
        let samples = self.playout.pop(std::time::Instant::now());
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        self.level = f64::from(peak) / 32768.0;
        let frame = to_bytes(&samples);
        if let Some(w) = self.out.as_mut() {
            let _ = w.write_frame(&frame);
        }
        #[cfg(feature = "audio")]
        if let Some(p) = self.playback.as_ref() {
            if let Some(e) = self.echo.as_mut() {
                e.render(&samples);
            }
            p.play(frame);
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
            MediaEvent::Audio {
                seq,
                frame,
                codec,
                data,
                redundant,
            } => {
                if !redundant {
                    self.received += 1;
                }
                self.playout.push(
                    std::time::Instant::now(),
                    seq,
                    frame,
                    codec,
                    data,
                    redundant,
                );
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

    /// What the interface shows about the call's sound.
    pub(crate) fn quality(&self) -> Quality {
        let p: PlayoutStats = self.playout.stats();
        let st = &p.jitter;
        let s = self.call.media.stats().session;
        // On the wire: the datagrams (RTP, seal) plus 28 bytes of IPv4 and
        // UDP headers each, over the call so far.
        let secs = self.started.elapsed().as_secs_f64().max(0.02);
        let bytes = s.audio_bytes_sent + 28 * s.audio_sent;
        Quality {
            codec: self.call.codec.name(),
            kbps: bytes as f64 * 8.0 / secs / 1000.0,
            loss_percent: 100.0 * st.lost as f64 / (st.received + st.lost).max(1) as f64,
            lost: st.lost,
            late: st.late,
            jitter_ms: st.jitter_ms,
            concealed: p.concealed,
            recovered: p.recovered,
            delay_ms: p.delay_ms,
            trimmed: p.trimmed,
            peer_loss_percent: f64::from(s.peer_loss) * 100.0 / 256.0,
            protection: (s.redundancy, s.fec_loss),
        }
    }

    /// Closes the output file.
    pub(crate) fn finish(self) -> Option<String> {
        self.out
            .and_then(|w| w.finalize().err().map(|e| format!("output wav: {e}")))
    }
}
