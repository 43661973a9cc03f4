//! baresip (Debian's `baresip-core`) with a config directory of its own:
//! SIP on a given loopback port, L16 and file audio only (a tone as its
//! microphone, a WAV file as its speaker), one account line.

use std::path::Path;
use std::process::Command;

use crate::process::Peer;
use crate::scratch::write;

/// The first RTP port baresip may use (`rtp_ports`).
pub const RTP_PORT_MIN: u16 = 20000;
/// The last RTP port baresip may use.
pub const RTP_PORT_MAX: u16 = 20100;

/// Starts baresip with SIP on 127.0.0.1:`port`, UDP and TCP (pick it with
/// [`free_udp_tcp_port`](crate::ports::free_udp_tcp_port)), and `account` (a line of
/// baresip's `accounts` file); it plays 2 s of a 440 Hz tone into calls
/// and writes what it hears to `dir/heard.wav`. Quits after 30 s.
pub fn start(dir: &Path, port: u16, account: &str) -> Peer {
    // Its source: 2 s of a 440 Hz tone, PCM16 mono at 8 kHz.
    let tone = write(dir, "tone.wav", wav_tone(8000, 2));
    write(
        dir,
        "config",
        format!(
            "sip_listen\t\t127.0.0.1:{port}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tl16.so\n\
             module\t\t\taufile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             audio_source\t\taufile,{}\n\
             audio_player\t\taufile,{}\n\
             audio_alert\t\taufile,/dev/null\n\
             rtp_ports\t\t{RTP_PORT_MIN}-{RTP_PORT_MAX}\n\
             net_interface\t\t127.0.0.1\n",
            tone.display(),
            dir.join("heard.wav").display()
        ),
    );
    write(dir, "accounts", format!("{account}\n"));
    let mut cmd = Command::new("baresip");
    cmd.arg("-f").arg(dir).args(["-t", "30", "-s"]);
    Peer::spawn("baresip", &mut cmd, dir)
}

/// A mono PCM16 WAV file of a 440 Hz tone.
fn wav_tone(rate: u32, secs: u32) -> Vec<u8> {
    let n = rate * secs;
    let mut v = Vec::with_capacity(44 + 2 * n as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let t = i as f32 / rate as f32;
        let s = ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}
