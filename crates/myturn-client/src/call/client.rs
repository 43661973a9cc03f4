//! The [`Client`], a registered user with a registered SIP agent, and how
//! it connects ([`ClientConfig`]), tells its progress and quits.

use std::net::IpAddr;
use std::time::Duration;

use myturn_sip::driver::SipHandle;
use myturn_sip::ua::CallHandle;
use tokio::sync::mpsc;

use super::Progress;
use crate::api::Api;
use crate::tls::Trust;
use crate::ClientError;

/// A registered user with a registered SIP agent.
#[derive(Debug)]
pub struct Client {
    /// The session with the pairing server.
    pub api: Api,
    /// The SIP agent, registered with the PBX.
    pub sip: SipHandle,
    /// The local address of the SIP and media sockets.
    pub bind_ip: IpAddr,
    /// The audio sample rate offered.
    pub rate: u32,
    /// The codecs offered, most preferred first (`--codec`): Opus is
    /// offered in SDP and in the sealed handshake, and used when the
    /// partner offers it too; PCM16 always works.
    pub codecs: Vec<myturn_media::codec::Codec>,
    /// Silence from the partner that ends a call (default 5 s).
    pub peer_timeout: Duration,
    /// How long each step of setting a call up may wait on the partner
    /// (getting ready, the INVITE, the answer); past it the flow draws
    /// another partner (default 10 s).
    pub answer_timeout: Duration,
    /// The interests to be paired on, sent with every `ready` (`None`:
    /// none given; the server keeps what the session gave last).
    pub interests: Option<crate::api::Interests>,
    pub(super) progress: Option<mpsc::UnboundedSender<Progress>>,
    pub(super) _keep_alive: AbortOnDrop,
    /// How it connected: what a reconnect does again.
    pub(super) config: ClientConfig,
    /// The SIP call being set up, to cancel if the set-up is abandoned.
    pub(super) pending_sip: Option<CallHandle>,
    /// The event stream closed unasked: reconnect.
    pub(super) lost: bool,
    /// Kicked or banned: never reconnect.
    pub(super) removed: bool,
    /// The server's event stream (pushes and the lobby), when it opened.
    pub(crate) events: Option<crate::events::Events>,
}

/// A background task that ends with its owner.
#[derive(Debug)]
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The default for [`Client::answer_timeout`].
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Well inside the server's default 30 s lease.
const KEEP_ALIVE: Duration = Duration::from_secs(8);

/// How a [`Client`] connects: to which server, trusting whom, from which
/// local address, at which audio rate, saying "still here" how often.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The pairing server's URL (`https://…`, or `http://…` on a trusted
    /// network).
    pub server: String,
    /// Whom to trust for TLS: the web's roots, plus `--ca-cert`.
    pub trust: Trust,
    /// The local address of the SIP and media sockets; unspecified
    /// (`0.0.0.0`): the local address of the route to the PBX.
    pub bind: IpAddr,
    /// The audio sample rate offered.
    pub rate: u32,
    /// How often to say "still here" to the server (shorter than its
    /// `--lease`).
    pub keep_alive: Duration,
    /// The codecs offered, most preferred first.
    pub codecs: Vec<myturn_media::codec::Codec>,
}

/// What a client offers unless told otherwise: what this build has, Opus
/// first ([`Codec::built`](myturn_media::codec::Codec::built)).
pub const DEFAULT_CODECS: &[myturn_media::codec::Codec] = myturn_media::codec::Codec::built();

impl ClientConfig {
    /// The server at `server`, trusting the web's roots, sockets bound to
    /// `bind`, audio at `rate`, the default keep-alive.
    pub fn new(server: &str, bind: IpAddr, rate: u32) -> ClientConfig {
        ClientConfig {
            server: server.to_owned(),
            trust: Trust::default(),
            bind,
            rate,
            keep_alive: KEEP_ALIVE,
            codecs: DEFAULT_CODECS.to_vec(),
        }
    }
}

impl Client {
    /// Registers `name` with the server at `base`, then registers over SIP
    /// with the credentials it handed out. An unspecified `bind_ip`
    /// (`0.0.0.0`) means the local address of the route to the PBX. TLS
    /// trusts the web's roots; [`Client::connect_with`] takes a
    /// [`ClientConfig`].
    pub async fn connect(
        base: &str,
        name: &str,
        bind_ip: IpAddr,
        rate: u32,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<Client, ClientError> {
        Self::connect_with(ClientConfig::new(base, bind_ip, rate), name, progress).await
    }

    /// [`Client::connect`], saying "still here" to the server every
    /// `keep_alive` (it must be shorter than the server's `--lease`).
    pub async fn connect_with_keep_alive(
        base: &str,
        name: &str,
        bind_ip: IpAddr,
        rate: u32,
        progress: Option<mpsc::UnboundedSender<Progress>>,
        keep_alive: Duration,
    ) -> Result<Client, ClientError> {
        let config = ClientConfig {
            keep_alive,
            ..ClientConfig::new(base, bind_ip, rate)
        };
        Self::connect_with(config, name, progress).await
    }

    /// Registers `name` as `config` says, then registers over SIP with the
    /// credentials the server handed out.
    pub async fn connect_with(
        config: ClientConfig,
        name: &str,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<Client, ClientError> {
        let (api, sip, keep_alive_task, events, bind_ip) =
            Self::attach(&config, name, config.bind, progress.as_ref()).await?;
        Ok(Client {
            api,
            sip,
            bind_ip,
            rate: config.rate,
            codecs: config.codecs.clone(),
            peer_timeout: myturn_media::session::DEFAULT_PEER_TIMEOUT,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            interests: None,
            progress,
            _keep_alive: keep_alive_task,
            config,
            pending_sip: None,
            lost: false,
            removed: false,
            events,
        })
    }
    /// Speaks in the lobby, usable while the flow waits for a partner.
    pub fn lobby_sender(&self) -> Option<crate::events::LobbySender> {
        self.events.as_ref().map(|e| e.sender())
    }
    pub(super) fn tell(&self, p: Progress) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(p);
        }
    }
    /// SIP unregister and `DELETE /v1/me`.
    pub async fn quit(self) -> Result<(), ClientError> {
        let api = self.api.clone();
        drop(self._keep_alive);
        let unregistered = self.sip.shutdown(Duration::from_secs(3)).await;
        api.logout().await?;
        if !unregistered {
            tracing::warn!("the PBX did not confirm the SIP unregistration");
        }
        Ok(())
    }
}
