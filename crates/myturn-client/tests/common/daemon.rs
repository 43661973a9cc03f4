//! External daemons the tests start (rtpengine, Kamailio): each in its
//! own process group with its output in a log file, killed on drop, its
//! log printed when the test fails.

use std::net::{IpAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rand_core::{OsRng, RngCore};

/// `len` UDP ports from an even base, all free on `ip` now, for a media
/// relay. Below Linux's ephemeral range (32768–60999), so ephemeral
/// sockets do not race for them, and off the 10000–19999 and 30000–40000
/// that packaged relays use by default.
pub fn free_media_range(ip: IpAddr, len: u16) -> (u16, u16) {
    for _ in 0..100 {
        let base = (20_000 + (OsRng.next_u32() % 9_000) as u16) & !1;
        let all_free = (base..base + len).all(|p| StdUdpSocket::bind((ip, p)).is_ok());
        if all_free {
            return (base, base + len - 1);
        }
    }
    panic!("no free UDP port range for a media relay");
}

/// A daemon in its own process group (Kamailio forks workers), its output
/// in a log file (a pipe nobody drains would block it). Killed on drop;
/// the end of its log is printed when the test fails.
pub struct Daemon {
    child: std::process::Child,
    pub name: &'static str,
    log: PathBuf,
}

impl Daemon {
    pub fn spawn(name: &'static str, cmd: &mut std::process::Command, dir: &Path) -> Daemon {
        use std::os::unix::process::CommandExt;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon { child, name, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with its log) if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("{} exited ({st}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!("---- {} log (last {} lines)", self.name, tail.len());
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// rtpengine (Debian's `rtpengine-daemon`) in userspace, media on
/// `interface`, ng control on a free loopback port: the daemon, its ng
/// port and its media ports.
pub fn rtpengine(dir: &Path, interface: IpAddr) -> (Daemon, u16, std::ops::RangeInclusive<u16>) {
    let ng = StdUdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (min, max) = free_media_range(interface, 40);
    let mut cmd = std::process::Command::new("rtpengine");
    cmd.args([
        // Not the packaged /etc/rtpengine/rtpengine.conf.
        "--config-file=none",
        "--foreground",
        "--log-stderr",
        "--no-log-timestamps",
        "--log-level=6",
        // Userspace forwarding only (no kernel module; and no
        // --no-fallback, which would demand it).
        "--table=-1",
        // One forwarding thread: with several, two can read the same
        // socket, and a descheduled one (a loaded CI machine) forwards
        // its packet late. Seen: the first audio frame after the next
        // three; the client writes --output-wav in arrival order, so a
        // byte-exact comparison would fail.
        "--num-threads=1",
    ])
    .arg(format!("--interface={interface}"))
    .arg(format!("--listen-ng=127.0.0.1:{ng}"))
    .arg(format!("--port-min={min}"))
    .arg(format!("--port-max={max}"));
    (Daemon::spawn("rtpengine", &mut cmd, dir), ng, min..=max)
}
