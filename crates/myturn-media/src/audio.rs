//! Sound devices through cpal (feature `audio`).
//!
//! Devices run at their own rate and channel count (usually 44.1 or
//! 48 kHz, stereo); the call runs at 8 or 16 kHz mono. Capture mixes down
//! and resamples into 20 ms PCM16 frames; playback resamples and copies to
//! every channel. cpal streams live on a thread of their own (they are not
//! `Send` on every platform); the handles here are.

use std::sync::mpsc;
use std::thread;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, StreamConfig};

use crate::resample::{to_f32, to_i16, Resampler};

/// Why a device could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// No such device, or no default one.
    #[error("no {kind} device {name}; see --list-devices")]
    NoDevice {
        /// `input` or `output`.
        kind: &'static str,
        /// The name asked for, quoted, or "available".
        name: String,
    },
    /// The backend refused.
    #[error("{0}")]
    Backend(String),
}

/// One device, for `--list-devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The name to pass to `--input-device` / `--output-device`.
    pub name: String,
    /// Can capture.
    pub input: bool,
    /// Can play.
    pub output: bool,
}

/// Every device of the default host.
pub fn list_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    let host = cpal::default_host();
    let devices = host
        .devices()
        .map_err(|e| AudioError::Backend(e.to_string()))?;
    Ok(devices
        .filter_map(|d| {
            let name = d.name().ok()?;
            Some(DeviceInfo {
                input: d.default_input_config().is_ok(),
                output: d.default_output_config().is_ok(),
                name,
            })
        })
        .collect())
}

fn find(input: bool, name: Option<&str>) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    let kind = if input { "input" } else { "output" };
    let missing = || AudioError::NoDevice {
        kind,
        name: name.map_or_else(|| "available".to_owned(), |n| format!("{n:?}")),
    };
    match name {
        None if input => host.default_input_device().ok_or_else(missing),
        None => host.default_output_device().ok_or_else(missing),
        Some(want) => {
            let mut devs = (if input {
                host.input_devices()
            } else {
                host.output_devices()
            })
            .map_err(|e| AudioError::Backend(e.to_string()))?;
            devs.find(|d| d.name().is_ok_and(|n| n == want))
                .ok_or_else(missing)
        }
    }
}

/// The device format a stream runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFormat {
    /// Device sample rate.
    pub rate: u32,
    /// Device channels.
    pub channels: u16,
    /// Device sample format, as cpal names it.
    pub sample_format: &'static str,
}

fn format_name(f: SampleFormat) -> &'static str {
    match f {
        SampleFormat::I16 => "i16",
        SampleFormat::U16 => "u16",
        SampleFormat::F32 => "f32",
        _ => "other",
    }
}

/// Finds a device and its default configuration.
fn open(
    input: bool,
    name: Option<&str>,
) -> Result<(cpal::Device, SampleFormat, StreamConfig, DeviceFormat), AudioError> {
    let dev = find(input, name)?;
    let sup = if input {
        dev.default_input_config()
    } else {
        dev.default_output_config()
    }
    .map_err(|e| AudioError::Backend(e.to_string()))?;
    let cfg: StreamConfig = sup.config();
    let format = DeviceFormat {
        rate: cfg.sample_rate.0,
        channels: cfg.channels,
        sample_format: format_name(sup.sample_format()),
    };
    Ok((dev, sup.sample_format(), cfg, format))
}

/// A running capture: 20 ms PCM16 frames at the call rate.
#[derive(Debug)]
pub struct Capture {
    /// Captured frames; the oldest are dropped if nobody reads.
    pub frames: mpsc::Receiver<Vec<u8>>,
    /// The device's own format.
    pub format: DeviceFormat,
    _stop: mpsc::Sender<()>,
}

/// A running playback: push 20 ms PCM16 frames at the call rate.
#[derive(Debug)]
pub struct Playback {
    frames: mpsc::SyncSender<Vec<u8>>,
    /// The device's own format.
    pub format: DeviceFormat,
    _stop: mpsc::Sender<()>,
}

impl Playback {
    /// Queues one frame; `false` if the device thread is gone or the queue
    /// (about a second) is full.
    pub fn play(&self, frame: Vec<u8>) -> bool {
        self.frames.try_send(frame).is_ok()
    }
}

/// A sample type a device may run at, converted to and from the call's
/// f32 samples.
trait DeviceSample: cpal::SizedSample + Send + 'static {
    /// The device's sample as the call's.
    fn to_call(self) -> f32;
    /// The call's sample as the device's.
    fn from_call(v: f32) -> Self;
}

impl DeviceSample for f32 {
    fn to_call(self) -> f32 {
        self
    }
    fn from_call(v: f32) -> f32 {
        v
    }
}

impl DeviceSample for i16 {
    fn to_call(self) -> f32 {
        to_f32(self)
    }
    fn from_call(v: f32) -> i16 {
        to_i16(v)
    }
}

impl DeviceSample for u16 {
    fn to_call(self) -> f32 {
        to_f32((i32::from(self) - 32768) as i16)
    }
    fn from_call(v: f32) -> u16 {
        (i32::from(to_i16(v)) + 32768) as u16
    }
}

type Built = Result<cpal::Stream, cpal::BuildStreamError>;

/// One direction of sound, the capture or the playback: what a stream
/// does with the device's samples, at whichever type the device runs.
trait Side: Send + 'static {
    /// Builds the device's stream at sample type `T`.
    fn build<T: DeviceSample>(self, dev: &cpal::Device, cfg: &StreamConfig) -> Built;
}

/// Opens the device (`input`: a microphone, else a speaker; `None`: the
/// default one) on a thread of its own, hands the side `make` makes for
/// its configuration the device's sample type, and keeps the stream
/// playing until the returned sender is dropped.
fn run<S: Side>(
    input: bool,
    device: Option<&str>,
    make: impl FnOnce(&StreamConfig) -> S + Send + 'static,
) -> Result<(DeviceFormat, mpsc::Sender<()>), AudioError> {
    let name = device.map(str::to_owned);
    on_stream_thread(move || {
        let (dev, sample_format, cfg, format) = open(input, name.as_deref())?;
        let side = make(&cfg);
        let stream = match sample_format {
            SampleFormat::F32 => side.build::<f32>(&dev, &cfg),
            SampleFormat::I16 => side.build::<i16>(&dev, &cfg),
            SampleFormat::U16 => side.build::<u16>(&dev, &cfg),
            other => {
                return Err(AudioError::Backend(format!(
                    "unsupported sample format {other:?}"
                )))
            }
        }
        .map_err(|e| AudioError::Backend(e.to_string()))?;
        Ok((stream, format))
    })
}

/// Runs `build` on a thread that keeps the stream alive until the handle
/// is dropped; returns what `build` returned besides the stream.
fn on_stream_thread<T: Send + 'static>(
    build: impl FnOnce() -> Result<(cpal::Stream, T), AudioError> + Send + 'static,
) -> Result<(T, mpsc::Sender<()>), AudioError> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("myturn-audio".into())
        .spawn(move || match build() {
            Ok((stream, t)) => {
                if let Err(e) = stream.play() {
                    let _ = ready_tx.send(Err(AudioError::Backend(e.to_string())));
                    return;
                }
                let _ = ready_tx.send(Ok(t));
                // Until the handle (the stop sender) is dropped.
                let _ = stop_rx.recv();
                drop(stream);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| AudioError::Backend(e.to_string()))?;
    let t = ready_rx
        .recv()
        .map_err(|_| AudioError::Backend("the audio thread died".into()))??;
    Ok((t, stop_tx))
}

/// Capture: mixes the device's channels down to mono, resamples to the
/// call rate and cuts 20 ms PCM16 frames.
struct CaptureSide {
    channels: usize,
    rs: Resampler,
    per_frame: usize,
    mono: Vec<f32>,
    out: Vec<f32>,
    pending: Vec<i16>,
    frames: mpsc::SyncSender<Vec<u8>>,
}

impl CaptureSide {
    fn push(&mut self, samples: impl Iterator<Item = f32>) {
        self.mono.clear();
        let all: Vec<f32> = samples.collect();
        for c in all.chunks(self.channels) {
            self.mono.push(c.iter().sum::<f32>() / c.len() as f32);
        }
        self.out.clear();
        self.rs.process(&self.mono, &mut self.out);
        self.pending.extend(self.out.iter().map(|&x| to_i16(x)));
        while self.pending.len() >= self.per_frame {
            let frame: Vec<u8> = self
                .pending
                .drain(..self.per_frame)
                .flat_map(i16::to_le_bytes)
                .collect();
            let _ = self.frames.try_send(frame);
        }
    }
}

impl Side for CaptureSide {
    fn build<T: DeviceSample>(mut self, dev: &cpal::Device, cfg: &StreamConfig) -> Built {
        dev.build_input_stream(
            cfg,
            move |d: &[T], _: &_| self.push(d.iter().map(|&s| s.to_call())),
            |e: cpal::StreamError| tracing::warn!(error = %e, "capture stream error"),
            None,
        )
    }
}

/// Starts capturing from `device` (or the default input) into 20 ms frames
/// at `rate` Hz.
pub fn start_capture(device: Option<&str>, rate: u32) -> Result<Capture, AudioError> {
    let (frames_tx, frames_rx) = mpsc::sync_channel::<Vec<u8>>(50);
    let (format, stop) = run(true, device, move |cfg| {
        let per_frame = (rate / 50) as usize;
        CaptureSide {
            channels: usize::from(cfg.channels.max(1)),
            rs: Resampler::new(cfg.sample_rate.0, rate),
            per_frame,
            mono: Vec::new(),
            out: Vec::new(),
            pending: Vec::with_capacity(per_frame * 2),
            frames: frames_tx,
        }
    })?;
    Ok(Capture {
        frames: frames_rx,
        format,
        _stop: stop,
    })
}

/// Playback: resamples queued frames to the device rate and copies each
/// sample to every channel; silence when nothing is queued.
struct PlaybackSide {
    channels: usize,
    rs: Resampler,
    queue: std::collections::VecDeque<f32>,
    scratch: Vec<f32>,
    frames: mpsc::Receiver<Vec<u8>>,
}

impl PlaybackSide {
    fn next(&mut self) -> f32 {
        while self.queue.is_empty() {
            let Ok(frame) = self.frames.try_recv() else {
                return 0.0;
            };
            let samples: Vec<f32> = frame
                .chunks_exact(2)
                .map(|c| {
                    to_f32(i16::from_le_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ]))
                })
                .collect();
            self.scratch.clear();
            self.rs.process(&samples, &mut self.scratch);
            self.queue.extend(self.scratch.iter().copied());
        }
        self.queue.pop_front().unwrap_or(0.0)
    }
}

impl Side for PlaybackSide {
    fn build<T: DeviceSample>(mut self, dev: &cpal::Device, cfg: &StreamConfig) -> Built {
        dev.build_output_stream(
            cfg,
            move |d: &mut [T], _: &_| {
                for c in d.chunks_mut(self.channels) {
                    let v = T::from_call(self.next());
                    c.iter_mut().for_each(|s| *s = v);
                }
            },
            |e: cpal::StreamError| tracing::warn!(error = %e, "playback stream error"),
            None,
        )
    }
}

/// Starts playing to `device` (or the default output) 20 ms frames at
/// `rate` Hz; silence when nothing is queued.
pub fn start_playback(device: Option<&str>, rate: u32) -> Result<Playback, AudioError> {
    let (frames_tx, frames_rx) = mpsc::sync_channel::<Vec<u8>>(50);
    let (format, stop) = run(false, device, move |cfg| PlaybackSide {
        channels: usize::from(cfg.channels.max(1)),
        rs: Resampler::new(rate, cfg.sample_rate.0),
        queue: std::collections::VecDeque::new(),
        scratch: Vec::new(),
        frames: frames_rx,
    })?;
    Ok(Playback {
        frames: frames_tx,
        format,
        _stop: stop,
    })
}

/// For tests without a sound card: writes into `dir` an ALSA configuration
/// whose `default` PCM is the `file` plugin over `null` (playback lands in
/// `dir/played.raw`, capped by a `head -c` pipe since `null` consumes at
/// once; capture reads `dir/in.raw`, 4 s of a loud 1 kHz square wave at
/// 48 kHz), and returns the value for `ALSA_CONFIG_PATH`. ALSA reads its
/// configuration once per process: set it before anything touches ALSA,
/// or in a child's environment.
#[doc(hidden)]
pub fn file_pcm_config(dir: &std::path::Path) -> std::io::Result<String> {
    let mut input = Vec::new();
    for i in 0..(48_000 * 4) {
        let v: i16 = if (i / 24) % 2 == 0 { 8000 } else { -8000 };
        input.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dir.join("in.raw"), &input)?;
    let d = dir.display();
    std::fs::write(
        dir.join("asoundrc"),
        format!(
            "pcm.!default {{\n type file\n slave.pcm \"null\"\n file \"|head -c 64000000 > {d}/played.raw\"\n infile \"{d}/in.raw\"\n format \"raw\"\n}}\n"
        ),
    )?;
    let system = ["/usr/share/alsa/alsa.conf", "/etc/alsa/alsa.conf"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "alsa.conf (install libasound2)",
            )
        })?;
    Ok(format!("{system}:{d}/asoundrc"))
}
