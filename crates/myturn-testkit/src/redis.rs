//! redis-server (Debian's `redis-server`), started by the test: on a free
//! loopback TCP port, with its data in a temporary directory of its own
//! and AOF persistence on (`appendfsync always`, so even a killed server
//! loses no acknowledged write), stopped and restarted on the same port
//! and data, killed on drop.
//!
//! ```no_run
//! use myturn_testkit::{redis::Redis, skip};
//!
//! if !skip::installed("redis-server") {
//!     return; // SKIPPED here, a failure under CI
//! }
//! let mut redis = Redis::start();
//! let url = redis.url(); // redis://127.0.0.1:PORT/0
//! redis.restart(); // SIGTERM, then up again with its AOF
//! # let _ = url;
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_tcp_port;
use crate::process::Peer;
use crate::scratch::Scratch;

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server of the test's own.
#[derive(Debug)]
pub struct Redis {
    // Dropped first: the server dies before its directory goes.
    peer: Option<Peer>,
    port: u16,
    dir: Scratch,
}

impl Redis {
    /// Starts one on a free port, in a new temporary directory, and waits
    /// until it answers `PING`.
    pub fn start() -> Redis {
        let mut r = Redis {
            peer: None,
            port: free_tcp_port(),
            dir: Scratch::new(),
        };
        r.up();
        r
    }

    /// Its TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        self.url_db(0)
    }

    /// `redis://127.0.0.1:PORT/DB`.
    pub fn url_db(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Its data directory (the AOF lives here).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether it runs now.
    pub fn running(&self) -> bool {
        self.peer.is_some()
    }

    /// Stops it gracefully (SIGTERM: the AOF is flushed) and waits for it
    /// to exit. Nothing to do when it is stopped.
    pub fn stop(&mut self) {
        if let Some(peer) = self.peer.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &peer.id().to_string()])
                .stderr(Stdio::null())
                .status();
            // Killed after the timeout if it has not exited by then.
            let _ = peer.wait(Duration::from_secs(10));
        }
    }

    /// Kills it (SIGKILL, a crash); the AOF holds every acknowledged
    /// write (`appendfsync always`).
    pub fn kill(&mut self) {
        // The guard kills the whole process group on drop.
        self.peer = None;
    }

    /// Starts it again on the same port and data; a running one is
    /// stopped first.
    pub fn restart(&mut self) {
        self.stop();
        self.up();
    }

    /// Starts it if it is stopped (same port and data).
    pub fn resume(&mut self) {
        if self.peer.is_none() {
            self.up();
        }
    }

    fn up(&mut self) {
        let mut cmd = Command::new("redis-server");
        // No config file: everything on the command line.
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            // No RDB snapshots: the AOF is the persistence under test.
            .args(["--save", ""])
            .args(["--logfile", ""]);
        let mut peer = Peer::spawn("redis-server", &mut cmd, self.dir.path());
        let end = Instant::now() + START_TIMEOUT;
        while !ping(self.addr()) {
            peer.assert_running();
            assert!(
                Instant::now() < end,
                "redis-server does not answer PING on {}:\n{}",
                self.addr(),
                peer.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.peer = Some(peer);
    }
}

/// Whether a Redis on `addr` answers `PING` with `+PONG` (not `-LOADING`).
pub fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}
