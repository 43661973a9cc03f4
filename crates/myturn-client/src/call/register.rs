//! Registering: with the pairing server over HTTP, then with the PBX over
//! SIP on the credentials it handed out (retried while an external PBX
//! loads the account), then the keep-alive and the event stream. What
//! connecting and reconnecting share.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use myturn_sip::driver::{self as sip, SipHandle};
use myturn_sip::ua::{Config as SipConfig, Event as SipEvent};
use rand_core::OsRng;
use tokio::sync::mpsc;

use super::client::AbortOnDrop;
use super::{Client, ClientConfig, Progress};
use crate::api::Api;
use crate::{ClientError, PbxError};

/// How long a refused first REGISTER is retried: an external PBX (Asterisk)
/// learns a new account only after its configuration reload, so the first
/// attempts may meet "wrong password" for a moment.
const REGISTER_GRACE: Duration = Duration::from_secs(8);
/// First pause between those retries (doubling, at most 2 s).
const REGISTER_BACKOFF: Duration = Duration::from_millis(250);

/// REGISTERs, retrying a refusal with backoff for [`REGISTER_GRACE`]: with
/// an external PBX the account may not be loaded yet.
async fn register_with_retry(sip: &mut SipHandle, pbx: SocketAddr) -> Result<(), ClientError> {
    let t0 = Instant::now();
    let mut pause = REGISTER_BACKOFF;
    loop {
        sip.register().await?;
        let mut skipped = Vec::new();
        let r = sip
            .wait_for(Duration::from_secs(10), &mut skipped, |e| match e {
                SipEvent::Registered { .. } => Some(Ok(())),
                SipEvent::RegistrationFailed { code, reason } => Some(Err((*code, reason.clone()))),
                _ => None,
            })
            .await;
        match r {
            Some(Ok(())) => return Ok(()),
            Some(Err((code, reason))) if t0.elapsed() + pause < REGISTER_GRACE => {
                tracing::info!(
                    code,
                    %reason,
                    retry_in_ms = pause.as_millis() as u64,
                    "SIP registration refused; the PBX may not know the account yet, retrying"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Some(Err((code, reason))) => {
                return Err(PbxError::RegistrationRefused {
                    code,
                    reason,
                    secs: t0.elapsed().as_secs(),
                }
                .into())
            }
            None => return Err(PbxError::NoAnswer(pbx).into()),
        }
    }
}

/// The local address this host uses to reach `pbx`: what the SIP and
/// media sockets bind when no address is given (an unspecified `bind_ip`).
/// A connected UDP socket sends nothing; the kernel only picks the route.
async fn route_to(pbx: SocketAddr) -> Result<IpAddr, ClientError> {
    let any: IpAddr = if pbx.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let probe = tokio::net::UdpSocket::bind((any, 0))
        .await
        .map_err(|e| ClientError::io("route to the PBX", e))?;
    probe
        .connect(pbx)
        .await
        .map_err(|e| ClientError::io(format!("no route to the PBX at {pbx}"), e))?;
    let ip = probe.local_addr()?.ip();
    tracing::info!(%pbx, local = %ip, "bound to the address of the route to the PBX");
    Ok(ip)
}

impl Client {
    /// Registration over HTTP and SIP, the keep-alive and the event stream:
    /// what connecting and reconnecting share.
    pub(super) async fn attach(
        config: &ClientConfig,
        name: &str,
        bind_ip: IpAddr,
        progress: Option<&mpsc::UnboundedSender<Progress>>,
    ) -> Result<
        (
            Api,
            SipHandle,
            AbortOnDrop,
            Option<crate::events::Events>,
            IpAddr,
        ),
        ClientError,
    > {
        let api = Api::register_trusting(&config.trust, &config.server, name).await?;
        let tell = |p| {
            if let Some(tx) = progress {
                let _ = tx.send(p);
            }
        };
        tell(Progress::Registered {
            name: api.user.name.clone(),
            extension: api.user.sip.extension.clone(),
        });
        // `HOST:PORT`, or `HOST:PORT;transport=tls` when the PBX wants SIP
        // over TLS.
        let (domain, tls) = match api.user.sip.domain.split_once(';') {
            Some((d, params)) => (
                d.to_owned(),
                params
                    .split(';')
                    .any(|p| p.trim().eq_ignore_ascii_case("transport=tls")),
            ),
            None => (api.user.sip.domain.clone(), false),
        };
        let domain = &domain;
        let pbx: SocketAddr = domain
            .parse()
            .or_else(|_| format!("{domain}:{}", if tls { 5061 } else { 5060 }).parse())
            .map_err(|_| {
                ClientError::Protocol(format!("SIP domain `{domain}` is not an address"))
            })?;
        let bind_ip = if bind_ip.is_unspecified() {
            route_to(pbx).await?
        } else {
            bind_ip
        };
        let socket = tokio::net::UdpSocket::bind((bind_ip, 0))
            .await
            .map_err(|e| ClientError::io("SIP socket", e))?;
        let local = socket.local_addr()?;
        let mut cfg = SipConfig::new(local, pbx, &api.user.sip.username, &api.user.sip.password);
        cfg.domain = domain.clone();
        let mut sip = if tls {
            // The PBX shows the API's certificate: check it for the API's name.
            drop(socket);
            let name = rustls::pki_types::ServerName::try_from(api.host()).map_err(|_| {
                ClientError::Protocol(format!("`{}` is not a host name", api.host()))
            })?;
            let target = sip::TlsTarget {
                proxy: pbx,
                name,
                connector: tokio_rustls::TlsConnector::from(api.trust().client_config()),
            };
            tracing::info!(%pbx, "SIP over TLS");
            sip::start_tls(target, cfg, Box::new(OsRng))
                .await
                .map_err(|e| match crate::tls::explain(&e) {
                    Some(why) => ClientError::Tls {
                        why,
                        source: e.into(),
                    },
                    None => PbxError::TlsUnreachable { pbx, source: e }.into(),
                })?
        } else {
            sip::start(socket, cfg, Box::new(OsRng))?
        };
        register_with_retry(&mut sip, pbx).await?;
        tell(Progress::SipRegistered);
        let keep_alive = AbortOnDrop(tokio::spawn(api.clone().keep_alive(config.keep_alive)));
        // Best effort: without it the flow polls, and there is no lobby.
        let events = match crate::events::Events::connect(&api).await {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(error = %e, "no event stream: polling instead");
                None
            }
        };
        Ok((api, sip, keep_alive, events, bind_ip))
    }
}
