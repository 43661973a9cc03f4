//! Command-line flags, `MYTURN_*` environment variables and the
//! `--config` file: [`Config`], [`Config::load`], and the values they take
//! (`values`).

mod edge;
pub mod file;
mod values;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use edge::{Nets, RateLimit};
pub use file::FileError;
pub(crate) use values::canonical;
pub use values::{
    Admission, Cidr, DigestAlgorithm, LogFormat, MediaRelay, NgAddr, PbxKind, PortRange,
    ReloadMethod, Switch,
};

/// myTurn pairing server.
///
/// Registers users, issues each one a SIP account and short-lived tokens,
/// pairs ready users uniformly at random, and keeps the PBX's generated
/// config in step. Every flag can also be set with the environment
/// variable shown, or as a key in the --config file (`foo_bar` for
/// `--foo-bar`). The command line beats the environment, which beats the
/// file, which beats the defaults.
///
/// Flags that matter only with one PBX or with a Redis state are listed
/// under their own headings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "myturn-server", version, about, long_about)]
pub struct Config {
    /// A TOML file of settings: each flag `--foo-bar` is a top-level key
    /// `foo_bar` (`deploy/myturn-server.toml` shows them all). Its values
    /// stand in for the defaults: flags and environment variables beat it.
    /// An unknown key or a bad value stops the start, naming it.
    #[arg(long, env = "MYTURN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address for the HTTP API.
    #[arg(long, env = "MYTURN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Log format on stderr. The level comes from `MYTURN_LOG` (such as
    /// `info` or `debug,tower_http=warn`).
    #[arg(long, env = "MYTURN_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,

    /// Serve HTTPS and WSS on --listen with this certificate chain (PEM,
    /// leaf first). Needs --tls-key. Reloaded on SIGHUP and whenever the
    /// files change, so a renewal needs no restart.
    #[arg(long, env = "MYTURN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key for --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "MYTURN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Reverse proxies (addresses or CIDR ranges, comma-separated) whose
    /// `Forwarded` / `X-Forwarded-For` name the real client. Rate limits,
    /// bans and logs then see the client, not the proxy. Headers from
    /// anyone else are ignored.
    #[arg(long, env = "MYTURN_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<Cidr>,

    /// Which PBX to drive. `builtin` (the default) runs an in-process SIP
    /// registrar and proxy on --sip-listen, so nothing else is needed;
    /// `asterisk` writes chan_sip files (Asterisk ≤ 20); `asterisk-pjsip`
    /// writes PJSIP files (Asterisk 21+); `kamailio` writes the accounts
    /// into Redis for Kamailio nodes (--kamailio-redis); `none` pairs users
    /// without provisioning SIP accounts anywhere.
    #[arg(long, env = "MYTURN_PBX", value_enum, default_value = "builtin")]
    pub pbx: PbxKind,

    /// With `--pbx builtin`: the UDP address of the built-in SIP registrar
    /// and proxy.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIP_LISTEN", default_value = "127.0.0.1:5060")]
    pub sip_listen: SocketAddr,

    /// With `--pbx builtin`: where calls' media flows. `builtin` (the
    /// default) relays it through this server, so clients behind NATs can
    /// talk; `rtpengine` hands the same job to an rtpengine (--rtpengine);
    /// `off` lets clients send straight to each other (a LAN). The relay
    /// forwards sealed payloads untouched: it cannot read them.
    #[arg(
        help_heading = BUILTIN,
        long,
        env = "MYTURN_MEDIA_RELAY",
        value_enum,
        default_value = "builtin"
    )]
    pub media_relay: MediaRelay,

    /// With `--media-relay builtin`: the UDP ports the relay takes pairs
    /// from, two per call. The default is Asterisk's rtp.conf range, below
    /// Linux's ephemeral ports; open it in the firewall.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_MEDIA_PORTS", default_value = "10000-19999")]
    pub media_ports: PortRange,

    /// With `--media-relay builtin`: seconds without a single media packet
    /// after which a relayed call's ports are freed.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_MEDIA_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub media_timeout: u64,

    /// With `--media-relay builtin`: the UDP ports the browser client's
    /// WebRTC data channels take, one per page in a call (open them in the
    /// firewall beside --media-ports). Default: any free port, which works
    /// where nothing filters UDP; where only the listed ports pass, pages
    /// fall back to their WebSocket by themselves.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_WEBRTC_PORTS")]
    pub webrtc_ports: Option<PortRange>,

    /// With `--media-relay builtin`: the IP written into SDP for the relay
    /// (a public address that NATs to this host). Defaults to the PBX's
    /// own address; the ports are bound on --sip-listen's address.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_MEDIA_ADVERTISE")]
    pub media_advertise: Option<std::net::IpAddr>,

    /// With `--media-relay rtpengine`: rtpengine's ng control address, as
    /// Kamailio writes it (`udp:127.0.0.1:2223`).
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_RTPENGINE")]
    pub rtpengine: Option<NgAddr>,

    /// With `--pbx builtin` and --tls-cert: where the built-in PBX takes
    /// SIP over TLS (with the same certificate), and clients are told to
    /// use it (`transport=tls` in their SIP domain). Default: the
    /// --sip-listen address with port 5061. UDP stays open beside it.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIPS_LISTEN")]
    pub sips_listen: Option<SocketAddr>,

    /// With `--pbx builtin`: the digest realm.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIP_REALM", default_value = "myturn")]
    pub sip_realm: String,

    /// With `--pbx builtin`: digest algorithms offered, most preferred
    /// first (one challenge each, RFC 8760).
    #[arg(
        help_heading = BUILTIN,
        long,
        env = "MYTURN_SIP_DIGEST",
        value_enum,
        value_delimiter = ',',
        default_value = "sha-256,md5"
    )]
    pub sip_digest: Vec<DigestAlgorithm>,

    /// With `--pbx builtin`: failed SIP authentications from one IP within
    /// --sip-fail-window-secs that block it (extension scanners, password
    /// guessers).
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIP_FAIL_LIMIT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub sip_fail_limit: u32,

    /// With `--pbx builtin`: the window, in seconds, for --sip-fail-limit.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIP_FAIL_WINDOW_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub sip_fail_window_secs: u64,

    /// With `--pbx builtin`: seconds a blocked IP is ignored (after
    /// --sip-fail-limit failures, or for flooding past --sip-rate-limit;
    /// a flood that goes on renews it).
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIP_BLOCK_SECS", default_value_t = 60)]
    pub sip_block_secs: u64,

    // ---- The edge under attack (issue #26): SIP flood protection and the
    // HTTP API's per-IP limits. Keep these together.
    /// With `--pbx builtin`: datagrams a second each source IP may send,
    /// `RATE/BURST` (BURST defaults to 4 × RATE), or `off`. Checked before
    /// a datagram is parsed; a source past it is ignored for
    /// --sip-block-secs, renewed while it keeps on.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIP_RATE_LIMIT", default_value = "50/200")]
    pub sip_rate_limit: RateLimit,

    /// With `--pbx builtin`: answers a second to a source IP that has not
    /// proved an account's password (`RATE/BURST`, or `off`). Past it such
    /// a source is told nothing, so forged requests cannot aim the PBX's
    /// answers at a third party. A source whose credentials passed is
    /// answered freely for 15 minutes.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIP_UNAUTH_LIMIT", default_value = "10/20")]
    pub sip_unauth_limit: RateLimit,

    /// With `--pbx builtin`: networks exempt from the SIP limits and
    /// blocks (trunks, a Kamailio in front, monitoring), comma-separated
    /// addresses or ADDRESS/PREFIX, or `none`. Loopback by default.
    #[arg(long, help_heading = BUILTIN, env = "MYTURN_SIP_TRUSTED", default_value = "127.0.0.0/8,::1")]
    pub sip_trusted: Nets,

    /// Most TCP connections open at once to the HTTP API from one IP
    /// (WebSockets included); past it a new one is answered 429 and
    /// closed. 0: no limit. --trusted-proxy peers are not counted (the
    /// clients they name are held to --http-rate-limit). Off with
    /// --rate-limits off.
    #[arg(long, env = "MYTURN_HTTP_CONN_LIMIT", default_value_t = 256)]
    pub http_conn_limit: u32,

    /// HTTP requests a second from one client IP, `RATE/BURST` or `off`;
    /// past it 429 `rate_limited` with Retry-After, before the request is
    /// routed or its body read. Off with --rate-limits off.
    #[arg(long, env = "MYTURN_HTTP_RATE_LIMIT", default_value = "100/200")]
    pub http_rate_limit: RateLimit,

    /// With Asterisk: the directory holding its config. The server writes
    /// only its own files there (myturn_sip.conf or myturn_pjsip.conf, and
    /// myturn_extensions.conf), rewriting them whole.
    #[arg(
        long,
        help_heading = ASTERISK,
        env = "MYTURN_ASTERISK_CONF_DIR",
        default_value = "/etc/asterisk"
    )]
    pub asterisk_conf_dir: PathBuf,

    /// With Asterisk: how to make it load the files: run a command, use
    /// AMI, or not at all.
    #[arg(long, help_heading = ASTERISK, env = "MYTURN_RELOAD", value_enum, default_value = "command")]
    pub reload: ReloadMethod,

    /// With `--reload command`: the command to run, followed by each CLI
    /// command (`sip reload`, `dialplan reload`) as one argument.
    #[arg(long, help_heading = ASTERISK, env = "MYTURN_RELOAD_COMMAND", default_value = "asterisk -rx")]
    pub reload_command: String,

    /// With `--reload ami`: the manager interface address.
    #[arg(long, help_heading = ASTERISK, env = "MYTURN_AMI_ADDR", default_value = "127.0.0.1:5038")]
    pub ami_addr: SocketAddr,

    /// With `--reload ami`: the manager.conf user.
    #[arg(long, help_heading = ASTERISK, env = "MYTURN_AMI_USER", default_value = "myturn")]
    pub ami_user: String,

    /// With `--reload ami`: the manager.conf secret (prefer the env var or
    /// --ami-secret-file; command lines are visible to other local users).
    #[arg(long, help_heading = ASTERISK, env = "MYTURN_AMI_SECRET", hide_env_values = true)]
    pub ami_secret: Option<String>,

    /// With `--reload ami`: read the manager secret from this file.
    #[arg(long, help_heading = ASTERISK, env = "MYTURN_AMI_SECRET_FILE")]
    pub ami_secret_file: Option<PathBuf>,

    // ---- `--pbx kamailio` (pbx/kamailio/)
    /// With `--pbx kamailio`: the Redis Kamailio's db_redis reads
    /// (`redis://[:PASSWORD@]HOST:PORT/DB`, the DB number in Kamailio's
    /// DBURL). The server writes each user's `subscriber` and `dbaliases`
    /// rows there, and removes them (with the user's registrations) when
    /// the user leaves. Default: the `--state` Redis, when there is one.
    #[arg(long, help_heading = KAMAILIO, env = "MYTURN_KAMAILIO_REDIS", hide_env_values = true)]
    pub kamailio_redis: Option<String>,
    // ---- end of `--pbx kamailio`
    /// Milliseconds to gather changes before rewriting the PBX files, so a
    /// burst of registrations costs one write and one reload.
    #[arg(long, env = "MYTURN_COALESCE_MS", default_value_t = 200)]
    pub coalesce_ms: u64,

    /// With Asterisk: also offer 16 kHz L16 (`slin16`) besides 8 kHz
    /// (`slin`).
    #[arg(long, help_heading = ASTERISK, env = "MYTURN_WIDEBAND")]
    pub wideband: bool,

    /// With Asterisk: seconds a call rings before `Dial()` gives up.
    #[arg(long, help_heading = ASTERISK, env = "MYTURN_DIAL_TIMEOUT", default_value_t = 60)]
    pub dial_timeout: u32,

    /// SIP domain handed to clients as their registrar, `host[:port]`.
    /// Defaults to the built-in PBX's address (--sip-listen), or
    /// 127.0.0.1:5060 for Asterisk. Set it when listening on 0.0.0.0 or
    /// behind NAT: clients must reach it.
    #[arg(long, env = "MYTURN_SIP_DOMAIN")]
    pub sip_domain: Option<String>,

    /// Access-token lifetime in seconds.
    #[arg(long, env = "MYTURN_TOKEN_TTL", default_value_t = 900, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub token_ttl: u64,

    /// Seconds of silence (no authenticated request, no open long-poll)
    /// after which a user is logged out and removed from the PBX.
    #[arg(long, env = "MYTURN_LEASE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=86_400))]
    pub lease: u64,

    /// Seconds a user whose event stream closed may take to reconnect
    /// before leaving the pairing pool or its pair (the partner is told
    /// `peer_left` `disconnected`). Users who never open a stream keep the
    /// lease alone.
    #[arg(long, env = "MYTURN_STREAM_GRACE", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub stream_grace: u64,

    /// Seconds a new pair has to start its call (both sides
    /// `ready_to_talk`). Past it the pair is ended: the side holding it up
    /// goes `busy` and both hear `peer_left` `no_answer`, so the live one
    /// draws again instead of waiting on someone who is gone.
    #[arg(long, env = "MYTURN_ANSWER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub answer_timeout: u64,

    /// Seconds a user who gave interests waits to be paired with someone
    /// who shares one, before the plain draw (paired with anyone). A client
    /// may ask for less with `interest_wait`, or never to fall back with
    /// `only_interests`.
    #[arg(long, env = "MYTURN_INTEREST_WAIT", default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub interest_wait: u64,

    /// A file of interests to refuse (slurs, spam terms), one per line;
    /// `#` starts a comment. A tag holding a term as whole words gets a
    /// 400 `interest_refused`. Read again on SIGHUP.
    #[arg(long, env = "MYTURN_INTEREST_BLOCKLIST")]
    pub interest_blocklist: Option<PathBuf>,

    /// Who lets ready users into the pairing pool.
    #[arg(long, env = "MYTURN_ADMISSION", value_enum, default_value = "open")]
    pub admission: Admission,

    /// Per-IP and per-user rate limits on registration, refresh, lobby
    /// chat and reports (429 with Retry-After when exceeded). Turn off only
    /// for load tests from one address.
    #[arg(long, env = "MYTURN_RATE_LIMITS", value_enum, default_value = "on")]
    pub rate_limits: Switch,

    /// Most WebSocket connections per user.
    #[arg(long, env = "MYTURN_MAX_SOCKETS_PER_USER", default_value_t = 4)]
    pub max_sockets_per_user: usize,

    /// Most WebSocket connections in all; beyond, upgrades get 503.
    #[arg(long, env = "MYTURN_MAX_SOCKETS", default_value_t = 50_000)]
    pub max_sockets: usize,

    /// Most users at once; registrations beyond get 503.
    #[arg(long, env = "MYTURN_MAX_USERS", default_value_t = 100_000)]
    pub max_users: usize,

    /// Where the state lives: `memory` (this process only: a restart
    /// forgets everyone; the default) or `redis://HOST:PORT/DB`, shared by
    /// every node pointed at it (users, sessions, pairs, bans, reports,
    /// rate limits). With Redis, every node also needs the same
    /// --jwt-key-file.
    #[arg(long, env = "MYTURN_STATE", default_value = "memory", value_parser = parse_state)]
    pub state: StateUrl,

    /// With `--state redis://…` (needed there): the access tokens' signing
    /// keys, one per line (each 32 bytes or more, such as 64 hex
    /// characters): the first signs, the others are still accepted, so a
    /// rotation is a new first line, and the old one dropped once its
    /// tokens expired (--token-ttl). Without it, a random key per process.
    #[arg(long, help_heading = REDIS, env = "MYTURN_JWT_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,

    /// With `--state redis://…`: this node's name among the nodes that
    /// share the state store (letters, digits, `-`, `_`, `.`; at most 64).
    /// Default: the host name and a random suffix, new at every start.
    #[arg(long, help_heading = REDIS, env = "MYTURN_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// Admin bearer token (16+ characters). Without it (or
    /// --admin-token-file) the admin API answers 403.
    #[arg(long, env = "MYTURN_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Read the admin bearer token from this file.
    #[arg(long, env = "MYTURN_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

impl Config {
    /// Defaults, as if started with no flags (for tests and embedding).
    pub fn defaults() -> Self {
        <Self as clap::Parser>::parse_from(["myturn-server"])
    }

    /// The configuration of this process: its flags, its `MYTURN_*`
    /// environment, and the `--config` file (or `MYTURN_CONFIG`), in that
    /// order of precedence, over the defaults.
    pub fn load() -> Result<Self, LoadError> {
        Self::load_from(std::env::args_os())
    }

    /// [`Config::load`] with these arguments (the first is the program's
    /// name) instead of the process's; the environment is still read.
    pub fn load_from<I, T>(args: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut cmd = <Self as clap::CommandFactory>::command();
        if let Some(path) = config_path(&args) {
            // The file's values become the defaults: clap then lets the
            // environment and the command line beat them.
            cmd = file::apply(cmd, &path)?;
        }
        let mut matches = cmd.try_get_matches_from_mut(args)?;
        let cfg = <Self as clap::FromArgMatches>::from_arg_matches_mut(&mut matches)
            .map_err(|e| e.format(&mut cmd))?;
        // Checked here rather than with clap's `requires`, which a value
        // from the file (a default, to clap) would not satisfy.
        if cfg.tls_cert.is_some() != cfg.tls_key.is_some() {
            return Err(cmd
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "--tls-cert and --tls-key go together: give both, or neither",
                )
                .into());
        }
        Ok(cfg)
    }
}

/// The `--config` file named on the command line (`--config FILE` or
/// `--config=FILE`), else by `MYTURN_CONFIG`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut found = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            found = it.next().map(PathBuf::from);
        } else if let Some(rest) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            found = Some(PathBuf::from(rest));
        }
    }
    found.or_else(|| {
        std::env::var_os("MYTURN_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A flag or an environment variable (clap's message, with usage;
    /// `--help` and `--version` arrive here too: [`clap::Error::exit`]
    /// prints them).
    #[error(transparent)]
    Args(#[from] clap::Error),
    /// The `--config` file.
    #[error(transparent)]
    File(#[from] FileError),
}

/// The `--help` heading of the built-in PBX's flags.
pub const BUILTIN: &str = "Built-in PBX (--pbx builtin, the default)";
/// The `--help` heading of the Asterisk backends' flags.
pub const ASTERISK: &str = "Asterisk backend (--pbx asterisk, --pbx asterisk-pjsip)";
/// The `--help` heading of the Kamailio backend's flags.
pub const KAMAILIO: &str = "Kamailio backend (--pbx kamailio)";
/// The `--help` heading of the flags for a state in Redis.
pub const REDIS: &str = "Redis state (--state redis://…)";

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateUrl {
    /// In this process.
    Memory,
    /// A Redis URL (`redis://HOST:PORT/DB`).
    Redis(String),
}

fn parse_state(s: &str) -> Result<StateUrl, String> {
    if s == "memory" {
        return Ok(StateUrl::Memory);
    }
    if s.starts_with("redis://") || s.starts_with("rediss://") {
        return redis::IntoConnectionInfo::into_connection_info(s)
            .map(|_| StateUrl::Redis(s.to_owned()))
            .map_err(|e| format!("`{s}` is not a Redis URL: {e}"));
    }
    Err(format!(
        "`{s}`: give `memory` or `redis://HOST:PORT/DB` (such as redis://127.0.0.1:6379/0)"
    ))
}

fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}`: a node id is 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// A secret file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Reads a secret from a file (trimmed).
pub(crate) fn read_secret(path: &std::path::Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| ReadError {
            path: path.to_owned(),
            source,
        })
}
