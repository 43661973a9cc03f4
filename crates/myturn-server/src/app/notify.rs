//! systemd's service notifications (sd_notify(3)), without libsystemd:
//! one datagram per message to the `AF_UNIX` socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
//!
//! With `Type=notify` the unit is started once `READY=1` arrives, which
//! the server sends when `/readyz` would answer ready; `STATUS=` lines show
//! in `systemctl status`; with `WatchdogSec=`, `WATCHDOG=1` goes out at
//! half of `$WATCHDOG_USEC`; `STOPPING=1` when a shutdown begins. Without
//! `$NOTIFY_SOCKET` (not run by systemd) nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the notifications go.
#[derive(Debug)]
pub(super) struct Notifier {
    socket: UnixDatagram,
    to: Target,
    /// Set by [`Notifier::stopping`]: no `READY=1` or status after it.
    stopped: AtomicBool,
}

#[derive(Debug)]
enum Target {
    Path(PathBuf),
    /// Linux's abstract namespace: `@name` in `$NOTIFY_SOCKET`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Abstract(Vec<u8>),
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, if any (and if a socket could
    /// be made to write to it).
    pub(super) fn from_env() -> Option<Self> {
        let raw = std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty())?;
        let to = target(raw)?;
        let socket = UnixDatagram::unbound().ok()?;
        // A notification never holds the server up.
        socket.set_nonblocking(true).ok()?;
        Some(Notifier {
            socket,
            to,
            stopped: AtomicBool::new(false),
        })
    }

    /// Sends one notification (`KEY=VALUE` lines). Best effort: systemd
    /// not listening is logged at debug and otherwise ignored.
    pub(super) fn send(&self, message: &str) {
        let sent = match &self.to {
            Target::Path(p) => self.socket.send_to(message.as_bytes(), p),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Target::Abstract(name) => {
                #[cfg(target_os = "android")]
                use std::os::android::net::SocketAddrExt as _;
                #[cfg(target_os = "linux")]
                use std::os::linux::net::SocketAddrExt as _;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| self.socket.send_to_addr(message.as_bytes(), &a))
            }
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "sd_notify not delivered");
        }
    }

    /// `READY=1` with a status line (unless stopping).
    pub(super) fn ready(&self, status: &str) {
        if !self.stopped.load(Ordering::Acquire) {
            self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
        }
    }

    /// A `STATUS=` line (unless stopping).
    pub(super) fn status(&self, status: &str) {
        if !self.stopped.load(Ordering::Acquire) {
            self.send(&format!("STATUS={}", one_line(status)));
        }
    }

    /// `STOPPING=1` with a status line; later statuses are not sent.
    pub(super) fn stopping(&self) {
        self.stopped.store(true, Ordering::Release);
        self.send("STOPPING=1\nSTATUS=stopping: draining requests");
    }

    /// `WATCHDOG=1` every `every`, for ever (spawn it).
    pub(super) async fn watchdog(&self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.send("WATCHDOG=1");
        }
    }
}

fn target(raw: std::ffi::OsString) -> Option<Target> {
    let bytes = raw.into_encoded_bytes();
    match bytes.first() {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => Some(Target::Abstract(bytes[1..].to_vec())),
        Some(b'/') => {
            let s = String::from_utf8(bytes).ok()?;
            Some(Target::Path(PathBuf::from(s)))
        }
        _ => None,
    }
}

/// A status is one line: systemd reads a newline as the next assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when it is
/// set for this process (`$WATCHDOG_PID` absent or this process's id).
pub(super) fn watchdog_interval() -> Option<Duration> {
    interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_and_only_for_this_process() {
        assert_eq!(
            interval(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            interval(Some("200000"), Some("7"), 7),
            Some(Duration::from_millis(100))
        );
        assert_eq!(interval(Some("200000"), Some("8"), 7), None);
        assert_eq!(interval(None, None, 7), None);
        assert_eq!(interval(Some("0"), None, 7), None);
        assert_eq!(interval(Some("soon"), None, 7), None);
    }

    #[test]
    fn messages_reach_the_socket_as_datagrams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            to: target(path.clone().into_os_string()).unwrap(),
            stopped: AtomicBool::new(false),
        };
        n.ready("serving\non 127.0.0.1:1");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..len]).unwrap(),
            "READY=1\nSTATUS=serving on 127.0.0.1:1"
        );
        n.stopping();
        let len = listener.recv(&mut buf).unwrap();
        assert!(buf[..len].starts_with(b"STOPPING=1\n"));
        // Nothing after STOPPING=1 claims the server serves.
        n.status("serving");
        n.send("WATCHDOG=1");
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        assert!(target("relative".into()).is_none());
    }
}
