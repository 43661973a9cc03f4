//! Judging what a client heard (its `--output-wav`, the playout itself:
//! silence before and after, concealment in place) against what its
//! partner sent: bit-exact for PCM16, on the decoded audio for Opus.

use std::path::Path;

use myturn_media::wav;

/// Samples per 20 ms frame at `rate`.
fn per_frame(rate: u32) -> usize {
    (rate / 50) as usize
}

/// The heard file's samples at `rate`.
pub fn samples(heard: &Path, rate: u32) -> Vec<i16> {
    wav::read(heard, rate).unwrap()
}

/// PCM16 frames as samples.
pub fn flatten(frames: &[Vec<u8>]) -> Vec<i16> {
    frames
        .iter()
        .flat_map(|f| f.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])))
        .collect()
}

/// The share of `sent`'s speech frames (not the quiet ones, which the
/// playout may leave out to cut its delay) found bit-exact in `heard`,
/// in order: the playout starts with silence, shortens pauses, and puts
/// a concealed frame in place of a lost one.
pub fn exact_share(heard: &Path, sent: &[Vec<u8>], rate: u32) -> f64 {
    let frames = wav::frames(&samples(heard, rate), per_frame(rate));
    let speech: Vec<&Vec<u8>> = sent
        .iter()
        .filter(|f| myturn_client::speech::rms(f) >= 200.0)
        .collect();
    let mut at = 0;
    let mut found = 0;
    let mut missing = Vec::new();
    for (k, f) in speech.iter().enumerate() {
        // A frame lost on the way is skipped over, not searched for far.
        match frames.iter().skip(at).take(60).position(|h| h == *f) {
            Some(p) => {
                at += p + 1;
                found += 1;
            }
            None => missing.push(k),
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "{}: speech frames not found bit-exact: {missing:?}",
            heard.display()
        );
    }
    found as f64 / speech.len().max(1) as f64
}

fn corr(a: &[i16], b: &[i16]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 1e-9f64, 1e-9f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

/// How alike the heard audio is to the sent audio, for a lossy codec:
/// the energy-weighted mean, over 100 ms blocks of what was sent, of the
/// best normalised correlation with the heard audio near where the block
/// should be (each talkspurt may play with its own delay). 1 is
/// identical; unrelated audio scores near 0.
pub fn similarity(heard: &[i16], sent: &[i16], rate: u32) -> f64 {
    let block = (rate / 10) as usize;
    let step = (rate / 1000) as usize;
    // Where the first loud block lies, searched over the whole file.
    let loud = |b: &[i16]| b.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
    let mut lag: Option<usize> = None;
    let (mut score, mut weight) = (0.0, 0.0);
    for (k, b) in sent.chunks_exact(block).enumerate() {
        let e = loud(b);
        if e / (block as f64) < 300.0 * 300.0 {
            continue;
        }
        let at = k * block;
        let range = match lag {
            None => 0..heard.len().saturating_sub(at + block),
            Some(l) => l.saturating_sub(rate as usize / 5)..l + rate as usize / 5,
        };
        let mut best = (f64::MIN, 0usize);
        let mut l = range.start;
        while l < range.end {
            if let Some(h) = heard.get(at + l..at + l + block) {
                let c = corr(b, h);
                if c > best.0 {
                    best = (c, l);
                }
            }
            l += step;
        }
        // Refine to the sample around the coarse best.
        for l in best.1.saturating_sub(step)..best.1 + step {
            if let Some(h) = heard.get(at + l..at + l + block) {
                let c = corr(b, h);
                if c > best.0 {
                    best = (c, l);
                }
            }
        }
        lag = Some(best.1);
        score += e * best.0.max(0.0);
        weight += e;
    }
    if weight == 0.0 {
        0.0
    } else {
        score / weight
    }
}

/// Asserts that `heard` holds `sent` as a call of `codec` carries it:
/// every frame bit-exact for PCM16 (`min` is the share required), alike
/// for Opus; returns the figure.
pub fn assert_heard(heard: &Path, sent: &[Vec<u8>], rate: u32, codec: &str, min: f64) -> f64 {
    let figure = match codec {
        "pcm16" => exact_share(heard, sent, rate),
        _ => similarity(&samples(heard, rate), &flatten(sent), rate),
    };
    eprintln!("{}: {codec} {figure:.3}", heard.display());
    assert!(
        figure >= min,
        "{}: {codec} figure {figure:.3} < {min}",
        heard.display()
    );
    figure
}
