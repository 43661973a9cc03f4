//! How the agent is set up: its [`Config`], the [`Transport`] to the
//! proxy, and the methods it answers ([`ALLOW`]).

use std::net::SocketAddr;
use std::time::Duration;

use crate::msg;
use crate::transaction::Timers;

/// Methods this agent answers (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";

/// How the agent reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Datagrams (RFC 3261 §18, RFC 3581).
    #[default]
    Udp,
    /// One TLS connection to the proxy that carries everything, requests
    /// to us included (RFC 3261 §26, RFC 5923 connection reuse): Via says
    /// `TLS`, the Contact `;transport=tls`.
    Tls,
    /// SIP over WebSocket (RFC 7118), the browser's way: one WebSocket
    /// to the proxy carries everything, one message per WebSocket
    /// message; Via says `WS`, the Contact `;transport=ws`.
    Ws,
}

impl Transport {
    /// `UDP`, `TLS` or `WS`, as in a Via.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
        }
    }
}

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The local UDP address (Via sent-by and, until a public one is
    /// learnt, the Contact).
    pub local: SocketAddr,
    /// The registrar / outbound proxy: every out-of-dialog request goes
    /// there (Asterisk, the built-in PBX, Kamailio).
    pub proxy: SocketAddr,
    /// The SIP domain: host part of the address of record and of the
    /// Request-URI for extensions.
    pub domain: String,
    /// User part of the address of record, also the digest username.
    pub username: String,
    /// The digest password.
    pub password: String,
    /// The display name in From.
    pub display_name: Option<String>,
    /// Requested registration lifetime, seconds.
    pub expires: u32,
    /// T1, T2 and T4.
    pub timers: Timers,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Larger datagrams are dropped.
    pub max_message_size: usize,
    /// While registered, an OPTIONS to the proxy this often keeps the NAT
    /// binding towards it open (RFC 5626 §4.4, RFC 3581); its answer's
    /// `received`/`rport` reveals a changed public address, which is then
    /// registered at once. `None`: no keep-alive.
    pub keepalive: Option<Duration>,
    /// UDP (default) or a TLS connection (its driver: [`crate::driver::start_tls`]).
    pub transport: Transport,
}

impl Config {
    /// Defaults for `username` with `password` at `local`, through `proxy` (also the domain).
    pub fn new(local: SocketAddr, proxy: SocketAddr, username: &str, password: &str) -> Self {
        Config {
            local,
            proxy,
            domain: proxy.ip().to_string(),
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: None,
            expires: 300,
            timers: Timers::default(),
            user_agent: concat!("myTurn/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_message_size: msg::DEFAULT_MAX_SIZE,
            // Below the 30 s a UDP mapping lives in Linux's conntrack and in
            // many home routers.
            keepalive: Some(Duration::from_secs(20)),
            transport: Transport::Udp,
        }
    }
}
