//! SIPp (Debian's `sip-tester`) with the scenarios kept as `.xml`
//! fixtures in `crates/myturn-testkit/sipp/`: each scenario once, its
//! per-run values given on SIPp's own command line (`-key` for the
//! `[keyword]`s a fixture names, `-set` for its flags, `-d` for a
//! `<pause/>`, `-s` for `[service]`, `-au`/`-ap` for `[authentication]`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ports::free_udp_port;
use crate::process::Peer;
use crate::scratch::write;

/// A scenario fixture. Each file's opening comment says what it does and
/// which keys (`-key`) and flags (`-set`) it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// SIPp as a registrar that challenges and checks the credentials.
    Registrar,
    /// SIPp as a UAS that challenges an INVITE, answers, takes the BYE.
    Uas,
    /// SIPp as a UAC that calls `[service]` and hangs up.
    Uac,
    /// SIPp registers (challenged), then unregisters unless `keep`.
    Register,
    /// SIPp registers with wrong credentials and expects two challenges.
    RegisterRefused,
    /// A callee's REGISTER, then a pause while `CalleeAnswer` serves.
    Callee,
    /// A callee's out-of-call half: answers an INVITE, takes the BYE.
    CalleeAnswer,
    /// A caller through a proxy that challenges with 407.
    Caller,
}

impl Scenario {
    /// The fixture's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Scenario::Registrar => "registrar.xml",
            Scenario::Uas => "uas.xml",
            Scenario::Uac => "uac.xml",
            Scenario::Register => "register.xml",
            Scenario::RegisterRefused => "register-refused.xml",
            Scenario::Callee => "callee.xml",
            Scenario::CalleeAnswer => "callee-answer.xml",
            Scenario::Caller => "caller.xml",
        }
    }

    /// The fixture's text.
    pub fn xml(self) -> &'static str {
        match self {
            Scenario::Registrar => include_str!("../sipp/registrar.xml"),
            Scenario::Uas => include_str!("../sipp/uas.xml"),
            Scenario::Uac => include_str!("../sipp/uac.xml"),
            Scenario::Register => include_str!("../sipp/register.xml"),
            Scenario::RegisterRefused => include_str!("../sipp/register-refused.xml"),
            Scenario::Callee => include_str!("../sipp/callee.xml"),
            Scenario::CalleeAnswer => include_str!("../sipp/callee-answer.xml"),
            Scenario::Caller => include_str!("../sipp/caller.xml"),
        }
    }

    /// Writes the fixture into `dir` (SIPp names its trace files after
    /// it); returns its path.
    pub fn write_to(self, dir: &Path) -> PathBuf {
        write(dir, self.file_name(), self.xml())
    }
}

/// A SIPp command line being put together: one scenario, run in `dir`
/// (where SIPp writes its trace files), on loopback.
#[derive(Debug)]
pub struct Sipp {
    cmd: Command,
    dir: PathBuf,
}

impl Sipp {
    /// SIPp running `scenario` from `dir`, on 127.0.0.1 and a free port,
    /// without a keyboard.
    pub fn new(dir: &Path, scenario: Scenario) -> Sipp {
        Sipp::on_port(dir, scenario, free_udp_port())
    }

    /// [`Sipp::new`] on `port` (one the test already told its peer).
    pub fn on_port(dir: &Path, scenario: Scenario, port: u16) -> Sipp {
        let mut cmd = Command::new("sipp");
        cmd.current_dir(dir)
            .arg("-sf")
            .arg(scenario.write_to(dir))
            .args(["-i", "127.0.0.1", "-nostdin", "-p", &port.to_string()]);
        Sipp {
            cmd,
            dir: dir.to_owned(),
        }
    }

    /// The remote host a UAC scenario sends to.
    pub fn remote(mut self, to: SocketAddr) -> Sipp {
        self.cmd.arg(to.to_string());
        self
    }

    /// `-key name value`: the fixture's `[name]`.
    pub fn key(mut self, name: &str, value: impl std::fmt::Display) -> Sipp {
        self.cmd.args(["-key", name, &value.to_string()]);
        self
    }

    /// `-set name 1`: turns on the fixture's flag `name`.
    pub fn flag(mut self, name: &str) -> Sipp {
        self.cmd.args(["-set", name, "1"]);
        self
    }

    /// `-au user -ap password`: what `[authentication]` answers with.
    pub fn auth(mut self, user: &str, password: &str) -> Sipp {
        self.cmd.args(["-au", user, "-ap", password]);
        self
    }

    /// `-oocsf`: the scenario for messages outside the main one's dialog.
    pub fn out_of_call(mut self, scenario: Scenario) -> Sipp {
        self.cmd.arg("-oocsf").arg(scenario.write_to(&self.dir));
        self
    }

    /// `-m calls`: stop after that many calls.
    pub fn calls(mut self, calls: u64) -> Sipp {
        self.cmd.args(["-m", &calls.to_string()]);
        self
    }

    /// One test's call: `-m 1`, a 30 s limit that fails the run, and
    /// SIPp's message and error logs (read with [`messages`]).
    pub fn traced_once(mut self) -> Sipp {
        self.cmd
            .args(["-m", "1", "-timeout", "30s", "-timeout_error"])
            .args(["-trace_msg", "-trace_err"]);
        self
    }

    /// Any other arguments.
    pub fn args<I, S>(mut self, args: I) -> Sipp
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Starts it.
    pub fn spawn(mut self) -> Peer {
        Peer::spawn("sipp", &mut self.cmd, &self.dir)
    }
}

/// SIPp's message logs in `dir` (`-trace_msg`), all of them.
pub fn messages(dir: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("_messages.log") {
            all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    all
}

/// The successful and failed call counts of the last line of the
/// statistics file (`-trace_stat`) SIPp wrote for `scenario` in `dir`;
/// the file is removed, so the next run starts a new one.
pub fn take_call_counts(dir: &Path, scenario: Scenario) -> (u64, u64) {
    let stem = scenario.file_name().trim_end_matches(".xml");
    let stat = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(stem) && name.ends_with(".csv")
        })
        .expect("SIPp stat file");
    let text = std::fs::read_to_string(&stat).unwrap();
    let _ = std::fs::remove_file(&stat);
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(';').collect();
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    let col = |n: &str| {
        let i = head.iter().position(|h| *h == n).unwrap();
        last[i].trim().parse::<u64>().unwrap()
    };
    (col("SuccessfulCall(C)"), col("FailedCall(C)"))
}
