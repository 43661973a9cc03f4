//! What other code writes to stderr while the full-screen interface runs:
//! ALSA's library, cpal and log lines would land on top of the screen and
//! stay there. [`capture`] points fd 2 at a pipe for the interface's
//! lifetime (and back when the guard drops); [`translate`] turns each
//! captured line into one the interface shows, once.

use std::collections::HashSet;
use std::io::BufRead as _;
use std::os::fd::{AsFd as _, OwnedFd};

/// What the interface says when there is no sound card.
pub(crate) const NO_SOUND: &str = "no sound card found: chat only; --list-devices, --no-audio";

/// Puts fd 2 back as it was when dropped.
#[derive(Debug)]
pub(crate) struct Restore(OwnedFd);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = rustix::stdio::dup2_stderr(&self.0);
    }
}

/// Points fd 2 at a pipe; its lines arrive on the receiver until the
/// guard drops.
pub(crate) fn capture() -> std::io::Result<(Restore, tokio::sync::mpsc::UnboundedReceiver<String>)>
{
    let saved = rustix::io::dup(std::io::stderr().as_fd())?;
    let (reader, writer) = rustix::pipe::pipe()?;
    let reader = std::fs::File::from(reader);
    rustix::stdio::dup2_stderr(&writer)?;
    drop(writer);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Ok((Restore(saved), rx))
}

/// Which captured lines were already shown.
#[derive(Debug, Default)]
pub(crate) struct Seen(HashSet<String>);

impl Seen {
    /// The line to show for `raw`, if it says something not yet shown:
    /// the sound library's complaints all become [`NO_SOUND`].
    pub(crate) fn translate(&mut self, raw: &str) -> Option<String> {
        let line = raw.trim();
        if line.is_empty() {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        let sound = [
            "alsa",
            "snd_",
            "cpal",
            "pcm",
            "no longer available",
            "unplugged",
        ];
        let shown = if sound.iter().any(|s| lower.contains(s)) {
            NO_SOUND.to_owned()
        } else {
            line.trim_start_matches("myturn: ").to_owned()
        };
        self.0.insert(shown.clone()).then_some(shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sound_complaints_become_one_line() {
        let mut s = Seen::default();
        let alsa = "ALSA lib confmisc.c:855:(parse_card) cannot find card '0'";
        assert_eq!(s.translate(alsa).as_deref(), Some(NO_SOUND));
        assert_eq!(
            s.translate("ALSA lib pcm.c:2721:(snd_pcm_open_noupdate) Unknown PCM default"),
            None
        );
        assert_eq!(
            s.translate("myturn: microphone: The requested device is no longer available. For example, it has been unplugged."),
            None
        );
        assert_eq!(s.translate("  "), None);
        assert_eq!(s.translate("myturn: other").as_deref(), Some("other"));
        assert_eq!(s.translate("myturn: other"), None);
    }
}
