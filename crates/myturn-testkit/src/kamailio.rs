//! Kamailio (Debian's `kamailio`) from the script fixtures in
//! `crates/myturn-testkit/kamailio/`: `globals.cfg` (listener, core
//! modules) included by each script, `{{…}}` values filled per run,
//! optional parts switched with Kamailio's own `-A` defines. The script is
//! checked (`kamailio -c`) before it is started.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::free_udp_port;
use crate::process::{output_ok, Peer};
use crate::scratch::write;
use crate::skip::missing;
use crate::template::Template;
use crate::wait::udp_listening;

/// A script fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Registrar and record-routing proxy with digest auth. Values:
    /// `algorithm`, `passwords` ([`passwords`]), `extensions`
    /// ([`extensions`]).
    AuthProxy,
    /// Registrar and record-routing proxy with topoh and rtpengine, no
    /// auth. Values: `ctl` (the RPC socket), `mask_callid`, `ng`.
    TopohRtpengine,
}

impl Script {
    fn fixture(self) -> (&'static str, &'static str) {
        match self {
            Script::AuthProxy => ("auth-proxy.cfg", include_str!("../kamailio/auth-proxy.cfg")),
            Script::TopohRtpengine => (
                "topoh-rtpengine.cfg",
                include_str!("../kamailio/topoh-rtpengine.cfg"),
            ),
        }
    }
}

/// Kamailio's module directory, if it holds every module in `needed`;
/// [`missing`] when not.
pub fn modules(needed: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["x86_64", "aarch64", "i386", "arm"]
        .iter()
        .map(|a| PathBuf::from(format!("/usr/lib/{a}-linux-gnu/kamailio/modules")))
        .collect();
    dirs.extend(
        [
            "/usr/lib/kamailio/modules",
            "/usr/lib64/kamailio/modules",
            "/usr/local/lib64/kamailio/modules",
            "/usr/local/lib/kamailio/modules",
        ]
        .map(PathBuf::from),
    );
    let found = dirs
        .into_iter()
        .find(|d| needed.iter().all(|m| d.join(m).is_file()));
    if found.is_none() {
        missing(&format!(
            "Kamailio's modules {} are not installed",
            needed.join(", ")
        ));
    }
    found
}

/// `route[PASSWORD]`'s body for [`Script::AuthProxy`]: each user's
/// password in `$var(pw)`, `otherwise` for anyone else.
pub fn passwords(users: &[(&str, &str)], otherwise: &str) -> String {
    let fallback = format!("$var(pw) = \"{otherwise}\";");
    if users.is_empty() {
        return format!("    {fallback}");
    }
    let mut s = String::from("    ");
    for (user, password) in users {
        s.push_str(&format!(
            "if ($au == \"{user}\") {{ $var(pw) = \"{password}\"; }}\n    else "
        ));
    }
    s.push_str(&format!("{{ {fallback} }}"));
    s
}

/// The Request-URI rewrites for [`Script::AuthProxy`]: each extension to
/// its user name, as the built-in PBX's directory maps them.
pub fn extensions(map: &[(&str, &str)]) -> String {
    map.iter()
        .map(|(ext, user)| format!("    if ($rU == \"{ext}\") {{ $rU = \"{user}\"; }}\n"))
        .collect()
}

/// A Kamailio to start in a directory of its own.
#[derive(Debug)]
pub struct Kamailio {
    dir: PathBuf,
    script: Script,
    port: u16,
    modules: PathBuf,
    workers: (u32, u32),
    values: Template,
    defines: Vec<&'static str>,
    memory: (u32, u32),
}

impl Kamailio {
    /// `script` with its modules from `modules`, on a free loopback UDP
    /// port, one child, log level 2, 64 MiB shared and 8 MiB private
    /// memory.
    pub fn new(dir: &Path, script: Script, modules: &Path) -> Kamailio {
        let (name, text) = script.fixture();
        Kamailio {
            dir: dir.to_owned(),
            script,
            port: free_udp_port(),
            modules: modules.to_owned(),
            workers: (1, 2),
            values: Template::new(name, text),
            defines: Vec::new(),
            memory: (64, 8),
        }
    }

    /// Its UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `children` and `debug` (log level).
    pub fn workers(mut self, children: u32, debug: u32) -> Kamailio {
        self.workers = (children, debug);
        self
    }

    /// Shared and private memory, in MiB (`-m`, `-M`).
    pub fn memory(mut self, shm: u32, pkg: u32) -> Kamailio {
        self.memory = (shm, pkg);
        self
    }

    /// The script's `{{name}}`.
    pub fn set(mut self, name: &str, value: impl std::fmt::Display) -> Kamailio {
        self.values = self.values.set(name, value);
        self
    }

    /// `-A define`: switches on a script's `#!ifdef` part, or sets a
    /// `NAME=value` the script uses (the auth proxy's `WITH_PIKE` and
    /// `PIKE_DENSITY`).
    pub fn define(mut self, define: &'static str) -> Kamailio {
        self.defines.push(define);
        self
    }

    /// A TLS listener on `port` too, with the tls module's config file
    /// `config` (only [`Script::AuthProxy`] has one).
    pub fn tls(mut self, port: u16, config: &Path) -> Kamailio {
        let listen = Template::new("listen-tls.cfg", include_str!("../kamailio/listen-tls.cfg"))
            .set("tls_port", port)
            .set("tls_config", config.display())
            .render();
        write(&self.dir, "listen-tls.cfg", listen);
        self.defines.push("WITH_TLS");
        self
    }

    /// Writes the script, has Kamailio check it, starts it and waits until
    /// it listens on its UDP port.
    pub fn start(self) -> Peer {
        let globals = Template::new("globals.cfg", include_str!("../kamailio/globals.cfg"))
            .set("port", self.port)
            .set("modules", self.modules.display())
            .set("children", self.workers.0)
            .set("debug", self.workers.1);
        write(&self.dir, "globals.cfg", globals.render());
        let (name, _) = self.script.fixture();
        let cfg = write(&self.dir, name, self.values.render());
        let defines: Vec<String> = self.defines.iter().map(|d| (*d).to_owned()).collect();
        let mut peer = check_and_spawn(&cfg, &defines, self.memory, &self.dir);
        udp_listening(self.port, Duration::from_secs(10), Some(&mut peer));
        peer
    }
}

/// Has Kamailio check `config` with `-A` `defines`, then starts it in the
/// foreground, logging to stderr, with `memory` (shared, private MiB) and
/// `dir` as its runtime and working directory. Both the fixtures' nodes and
/// [`kamailio_node`](crate::kamailio_node)'s complete configs start here.
pub(crate) fn check_and_spawn(
    config: &Path,
    defines: &[String],
    memory: (u32, u32),
    dir: &Path,
) -> Peer {
    let defines: Vec<String> = defines
        .iter()
        .flat_map(|d| ["-A".to_owned(), d.clone()])
        .collect();
    output_ok(
        "kamailio -c (the config check)",
        Command::new("kamailio")
            .arg("-c")
            .arg("-f")
            .arg(config)
            .args(&defines),
    );
    let mut cmd = Command::new("kamailio");
    cmd.arg("-f")
        .arg(config)
        .args(&defines)
        .args(["-DD", "-E"])
        .args(["-m", &memory.0.to_string()])
        .args(["-M", &memory.1.to_string()])
        .arg("-Y")
        .arg(dir)
        .arg("-w")
        .arg(dir);
    Peer::spawn("kamailio", &mut cmd, dir)
}
