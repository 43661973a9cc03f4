//! The values flags take: which PBX, admission, switches, port ranges,
//! rtpengine's address, address ranges, log and reload methods. Each
//! parses with a message that says what was expected.

use std::net::{IpAddr, SocketAddr};

/// Which PBX the server drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PbxKind {
    /// The built-in SIP registrar and proxy on `--sip-listen` (the
    /// default): the whole system on one machine, nothing else installed.
    Builtin,
    /// No PBX: pairing only (tests, load benchmarks, or a PBX provisioned
    /// some other way).
    None,
    /// Asterisk up to 20 with chan_sip: `myturn_sip.conf` +
    /// `myturn_extensions.conf`, reloaded with `sip reload` and
    /// `dialplan reload`.
    Asterisk,
    /// Asterisk 21+ with PJSIP: `myturn_pjsip.conf` +
    /// `myturn_extensions.conf`, reloaded with `module reload res_pjsip.so`
    /// and `dialplan reload`.
    AsteriskPjsip,
    /// Kamailio nodes sharing one Redis (`deploy/kamailio/kamailio.cfg`):
    /// each user's SIP account and extension are written into Redis
    /// (--kamailio-redis) in the layout Kamailio's db_redis reads for
    /// auth_db and alias_db.
    Kamailio,
}

impl PbxKind {
    /// The spelling used on the command line and in `/healthz`.
    pub fn as_str(self) -> &'static str {
        match self {
            PbxKind::Builtin => "builtin",
            PbxKind::None => "none",
            PbxKind::Asterisk => "asterisk",
            PbxKind::AsteriskPjsip => "asterisk-pjsip",
            PbxKind::Kamailio => "kamailio",
        }
    }

    /// Asterisk, either channel driver.
    pub fn is_asterisk(self) -> bool {
        matches!(self, PbxKind::Asterisk | PbxKind::AsteriskPjsip)
    }
}

/// Who lets ready users into the pairing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Admission {
    /// Ready users enter the pool at once.
    Open,
    /// Ready users wait in the waiting room (with the lobby chat) until an
    /// admin admits them (`POST /v1/admin/admit`).
    Moderated,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// A digest algorithm the built-in PBX offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DigestAlgorithm {
    /// SHA-256 (RFC 7616, RFC 8760).
    #[value(name = "sha-256")]
    Sha256,
    /// MD5 (RFC 2617), for older user agents.
    Md5,
}

/// Where the built-in PBX sends calls' media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MediaRelay {
    /// The built-in relay: each call gets a port pair from --media-ports,
    /// and both sides send their media there (works through any NAT).
    Builtin,
    /// An external rtpengine, driven over its ng control protocol at
    /// --rtpengine.
    Rtpengine,
    /// No relay: media flows directly between the clients, as their SDP
    /// says (only where they can reach each other, such as a LAN).
    Off,
}

/// A UDP port range, `LOW-HIGH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange(pub std::ops::RangeInclusive<u16>);

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not a range LOW-HIGH, such as 10000-19999"))?;
        let lo: u16 = lo
            .trim()
            .parse()
            .map_err(|_| format!("`{lo}` is not a port"))?;
        let hi: u16 = hi
            .trim()
            .parse()
            .map_err(|_| format!("`{hi}` is not a port"))?;
        if lo < 1024 || hi < lo.saturating_add(1) {
            return Err(format!(
                "`{s}`: the range must hold at least one pair of ports, at or above 1024"
            ));
        }
        Ok(PortRange(lo..=hi))
    }
}

/// rtpengine's ng control address, `udp:HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgAddr(pub SocketAddr);

impl std::str::FromStr for NgAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("udp:").unwrap_or(s);
        // Kamailio's `udp:127.0.0.1:2223` spelling, or a bare address.
        rest.parse::<SocketAddr>()
            .map(NgAddr)
            .map_err(|_| format!("`{s}` is not udp:IP:PORT (such as udp:127.0.0.1:2223)"))
    }
}

/// How the log on stderr is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people; coloured only when stderr is a terminal and
    /// `NO_COLOR` is not set.
    Human,
    /// One JSON object per line (timestamp, level, message, fields), for
    /// log shippers.
    Json,
}

/// How the server asks Asterisk to reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReloadMethod {
    /// Write the files only; reload by hand.
    None,
    /// Run `--reload-command` once per CLI command.
    Command,
    /// Send `Action: Command` through the Asterisk Manager Interface.
    Ami,
}

/// An address range, `ADDR/PREFIX`, or one address: the built-in PBX's
/// network type, so `--trusted-proxy` and `--sip-trusted` parse and match
/// alike.
pub use myturn_pbx::core::Net as Cidr;

pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
