//! How the PBX is set up: its accounts (the directory the pairing server
//! pushes) and its [`Config`].

use std::net::SocketAddr;
use std::time::Duration;

use myturn_sip::digest::Algorithm;
use myturn_sip::msg;
use myturn_sip::transaction::Timers;

use crate::limits::FloodConfig;
use crate::media::MediaMode;

/// One SIP account: the pairing server's user.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Digest username and address-of-record user part (the nickname).
    pub username: String,
    /// The dialable extension.
    pub extension: String,
    /// The digest password.
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

/// How the PBX is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address the PBX listens on (its Via and Record-Route).
    pub addr: SocketAddr,
    /// Digest realm.
    pub realm: String,
    /// Challenge algorithms, most preferred first (RFC 8760 §2.4: one
    /// `WWW-Authenticate` each).
    pub algorithms: Vec<Algorithm>,
    /// Shortest binding accepted (423 below it).
    pub min_expires: u32,
    /// Longest binding granted (longer requests are shortened).
    pub max_expires: u32,
    /// Binding lifetime when the REGISTER names none.
    pub default_expires: u32,
    /// Failed authentications from one IP within `fail_window` that block
    /// it.
    pub fail_limit: u32,
    /// The window `fail_limit` counts in.
    pub fail_window: Duration,
    /// How long a blocked IP is ignored (flooding or failed
    /// authentications; a flood that goes on renews it).
    pub block_for: Duration,
    /// The flood guard in front of the parser: per-source rate, answers to
    /// unproven sources, trusted networks.
    pub flood: FloodConfig,
    /// How long a nonce stays fresh.
    pub nonce_lifetime: Duration,
    /// T1, T2 and T4.
    pub timers: Timers,
    /// Larger datagrams are dropped.
    pub max_message_size: usize,
    /// Where calls' media flows: directly between the clients, through
    /// the built-in relay, or through an external rtpengine.
    pub media: MediaMode,
    /// A relayed call whose media stopped this long is torn down and its
    /// ports freed.
    pub media_timeout: Duration,
}

impl Config {
    /// Defaults for a PBX at `addr`: SHA-256 then MD5, bindings of 60 s to an hour, 5 failures in 5 s or more than 50 requests/s (burst 200) block for a minute, 10 answers/s (burst 20) to a source that has not proved a password, media direct.
    pub fn new(addr: SocketAddr) -> Self {
        Config {
            addr,
            realm: "myturn".into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            min_expires: 60,
            max_expires: 3600,
            default_expires: 300,
            fail_limit: 5,
            fail_window: Duration::from_secs(5),
            block_for: Duration::from_secs(60),
            flood: FloodConfig::default(),
            nonce_lifetime: Duration::from_secs(30),
            timers: Timers::default(),
            max_message_size: msg::DEFAULT_MAX_SIZE,
            media: MediaMode::Direct,
            media_timeout: Duration::from_secs(60),
        }
    }
}
