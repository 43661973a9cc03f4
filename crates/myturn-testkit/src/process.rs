//! A real peer's process, guarded: started in its own process group with
//! its output in a log file, killed (with every process it forked) on
//! drop, and its log's end printed when the test fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Lines of a peer's log printed when a test fails while it runs.
const TAIL_LINES: usize = 80;

/// A child process killed, with its whole process group, on drop.
///
/// Its stdout and stderr go to `{dir}/{name}.log` (a pipe nobody drains
/// would block a chatty daemon).
#[derive(Debug)]
pub struct Peer {
    child: Child,
    /// What the test calls it in messages (`kamailio`, `sipp`, …).
    pub name: &'static str,
    log: PathBuf,
}

impl Peer {
    /// Starts `cmd` as `name`, logging to `{dir}/{name}.log` (a second
    /// peer of the same name in `dir` appends to the same file).
    pub fn spawn(name: &'static str, cmd: &mut Command, dir: &Path) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out.try_clone().unwrap();
        // Its own process group, so forked workers (Kamailio's, nginx's)
        // die with it.
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Peer { child, name, log }
    }

    /// The process id, which is also its process group's.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics, with its log, if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("{} exited ({st}):\n{}", self.name, self.log());
        }
    }

    /// Waits for it to exit by itself: its exit code (`None` when it was
    /// killed, at `timeout` or by a signal) and its log.
    pub fn wait(mut self, timeout: Duration) -> (Option<i32>, String) {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code(), self.log());
            }
            if Instant::now() > end {
                self.kill_group();
                return (None, self.log());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until a line of its log contains `needle`, and returns that
    /// line; panics, with the log, if it exits first or `timeout` passes.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            self.assert_running();
            assert!(
                Instant::now() < end,
                "{} printed no `{needle}` within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_group(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill_group();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
            eprintln!("---- {} log (last {} lines)", self.name, tail.len());
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// Runs `cmd` to its end and returns its output; fails the test, with
/// its stderr, unless it succeeded. `what` names it in the message.
pub fn output_ok(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
