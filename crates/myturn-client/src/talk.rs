//! Audio and chat over an established call.

use std::collections::BTreeMap;
use std::time::Duration;

use myturn_media::codec::{to_bytes, Codec, Decoder};
use myturn_media::driver::MediaHandle;
use myturn_media::session::Event as MediaEvent;

/// What one side saw during [`talk`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TalkReport {
    /// Audio frames sent.
    pub frames_sent: u64,
    /// Received frames by end-to-end sequence number, decoded to PCM16
    /// little-endian in arrival order (bit-exact for PCM16).
    pub received: BTreeMap<u64, Vec<u8>>,
    /// The codec the frames came in.
    pub codec: Option<Codec>,
    /// Chat lines received, in order.
    pub texts: Vec<String>,
}

/// Sends `frames` paced every 20 ms and `chat` lines spread over the same
/// time, while collecting the partner's audio and chat; then listens for
/// `linger` more.
pub async fn talk(
    media: &mut MediaHandle,
    frames: &[Vec<u8>],
    chat: &[String],
    linger: Duration,
) -> TalkReport {
    let mut report = TalkReport::default();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let every = (frames.len() / (chat.len() + 1)).max(1);
    let mut next_chat = chat.iter();
    let mut i = 0;
    let end_linger = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(end_linger);
    let mut lingering = false;
    // The call rate, from the frames this side sends (narrowband if none).
    let rate = frames.first().map_or(8000, |f| (f.len() / 2 * 50) as u32);
    let mut decoder: Option<Decoder> = None;
    loop {
        tokio::select! {
            _ = tick.tick(), if !lingering => {
                if let Some(f) = frames.get(i) {
                    if media.send_audio(f.clone()).await.is_ok() {
                        report.frames_sent += 1;
                    }
                    if i > 0 && i % every == 0 {
                        if let Some(line) = next_chat.next() {
                            let _ = media.send_text(line.clone()).await;
                        }
                    }
                    i += 1;
                } else {
                    for line in next_chat.by_ref() {
                        let _ = media.send_text(line.clone()).await;
                    }
                    lingering = true;
                    end_linger.as_mut().reset(tokio::time::Instant::now() + linger);
                }
            }
            ev = media.events.recv() => match ev {
                Some(MediaEvent::Audio { seq, codec, data, redundant: false, .. }) => {
                    if decoder.as_ref().is_none_or(|d| d.codec() != codec) {
                        decoder = Decoder::new(codec, rate).ok();
                    }
                    report.codec = Some(codec);
                    if let Some(pcm) = decoder.as_mut().and_then(|d| d.decode(&data).ok()) {
                        report.received.insert(seq, to_bytes(&pcm));
                    }
                }
                Some(MediaEvent::Text(t)) => report.texts.push(t),
                Some(_) => {}
                None => break,
            },
            _ = &mut end_linger, if lingering => break,
        }
    }
    report
}
