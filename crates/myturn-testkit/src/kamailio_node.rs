//! A Kamailio node from a complete config file (not a fixture): the
//! shipped `deploy/kamailio/kamailio.cfg`, with its per-node values given
//! as Kamailio's own `-A NAME=value` defines. The file is checked
//! (`kamailio -c`) with the same defines before the node starts; the node
//! runs in a directory of its own (runtime files, control socket, log).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::kamailio::check_and_spawn;
use crate::process::Peer;
use crate::wait::udp_listening_at;

/// The modules the shipped config loads beyond those every Kamailio
/// package has (for [`modules`](crate::kamailio::modules)).
pub const SHIPPED_MODULES: &[&str] = &[
    "db_redis.so",
    "auth_db.so",
    "alias_db.so",
    "path.so",
    "nathelper.so",
    "rtpengine.so",
    "ipops.so",
];

/// The repository's `deploy/kamailio/`: the shipped config and the
/// db_redis schemas beside it.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kamailio")
}

/// What every node of one test's cluster shares.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// Redis, as db_redis takes it (`redis://127.0.0.1:PORT/DB`).
    pub dburl: &'a str,
    /// The SIP domain the server hands out.
    pub domain: &'a str,
    /// Every node's address (`IP/32,IP/32`).
    pub peers: &'a str,
    /// rtpengine's ng port on loopback.
    pub ng: u16,
}

/// A node to start.
#[derive(Debug)]
pub struct Node {
    dir: PathBuf,
    config: PathBuf,
    listen: SocketAddr,
    defines: Vec<String>,
    memory: (u32, u32),
}

impl Node {
    /// `config` listening on udp/`listen` (the defines `NODE_IP` and
    /// `SIP_PORT`), its
    /// control socket (`CTL`) in `dir`, two children (`CHILDREN`).
    pub fn new(dir: &Path, config: &Path, listen: SocketAddr) -> Node {
        let ctl = dir.join("kamailio_ctl");
        Node {
            dir: dir.to_owned(),
            config: config.to_owned(),
            listen,
            defines: vec![
                format!("NODE_IP={}", listen.ip()),
                format!("SIP_PORT={}", listen.port()),
                format!("CTL=\"unix:{}\"", ctl.display()),
                "CHILDREN=2".to_owned(),
            ],
            memory: (64, 8),
        }
    }

    /// A node of the shipped `deploy/kamailio/kamailio.cfg` (with the
    /// shipped schemas) on `listen`, numbered `id`, in `cluster`, tracing
    /// its routing in its log (`WITH_TRACE`).
    pub fn shipped(dir: &Path, listen: SocketAddr, cluster: &Cluster<'_>, id: u32) -> Node {
        let deploy = deploy_dir();
        std::fs::create_dir_all(dir).unwrap();
        Node::new(dir, &deploy.join("kamailio.cfg"), listen)
            .string("DBURL", cluster.dburl)
            .string("SCHEMA_PATH", deploy.join("db_redis/kamailio").display())
            .string("SIP_DOMAIN", cluster.domain)
            .string("PEERS", cluster.peers)
            .string("RTPENGINE", format!("udp:127.0.0.1:{}=1", cluster.ng))
            .define("NODE_ID", id)
            .switch("WITH_TRACE")
    }

    /// The address it listens on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// `-A NAME=value`, the value as Kamailio's preprocessor takes it (a
    /// number, a token).
    pub fn define(mut self, name: &str, value: impl std::fmt::Display) -> Node {
        self.defines.push(format!("{name}={value}"));
        self
    }

    /// `-A NAME="value"`: a string.
    pub fn string(self, name: &str, value: impl std::fmt::Display) -> Node {
        let v = format!("\"{value}\"");
        self.define(name, v)
    }

    /// `-A NAME`: a switch such as `WITH_TLS`.
    pub fn switch(mut self, name: &str) -> Node {
        self.defines.push(name.to_owned());
        self
    }

    /// Checks the config with the defines, starts the node and waits until
    /// it listens.
    pub fn start(self) -> Peer {
        let mut peer = check_and_spawn(&self.config, &self.defines, self.memory, &self.dir);
        udp_listening_at(self.listen, Duration::from_secs(10), Some(&mut peer));
        peer
    }
}
