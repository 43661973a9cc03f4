//! From the flags to each part's own configuration: the node's
//! [`Settings`] and the core's [`CoreConfig`].

use std::time::Duration;

use crate::config::{Admission, Config, Switch};
use crate::core::CoreConfig;
use crate::node::Settings;

/// The node's tunables.
pub(super) fn settings(cfg: &Config, sip_domain: String, tls: bool) -> Settings {
    let lease = Duration::from_secs(cfg.lease);
    Settings {
        sip_domain,
        lease,
        max_wait: (lease / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)),
        max_sockets_per_user: cfg.max_sockets_per_user,
        max_sockets: cfg.max_sockets,
        // Pongs are the liveness pairing checks: three per grace.
        ping_every: (lease / 3)
            .min(Duration::from_secs(cfg.stream_grace) / 3)
            .clamp(Duration::from_millis(250), Duration::from_secs(20)),
        stream_grace: Duration::from_secs(cfg.stream_grace),
        answer_timeout: Duration::from_secs(cfg.answer_timeout),
        tls,
        warning: (!tls && cfg.trusted_proxy.is_empty() && !cfg.listen.ip().is_loopback()).then(
            || {
                format!(
                    "the API on {} is plain HTTP on a non-loopback address: SIP passwords and \
                     tokens cross the network in cleartext; use --tls-cert/--tls-key, or a \
                     TLS-terminating proxy named with --trusted-proxy",
                    cfg.listen
                )
            },
        ),
        trusted_proxies: cfg.trusted_proxy.clone(),
        node_id: cfg.node_id.clone().unwrap_or_else(default_node_id),
        webrtc_ports: cfg.webrtc_ports.as_ref().map(|r| r.0.clone()),
    }
}

/// The core's configuration.
pub(super) fn core_config(cfg: &Config, settings: &Settings) -> CoreConfig {
    CoreConfig {
        max_users: cfg.max_users,
        moderated: cfg.admission == Admission::Moderated,
        liveness: Duration::from_secs(cfg.stream_grace),
        sip_domain: settings.sip_domain.clone(),
        token_ttl: cfg.token_ttl,
        lease: settings.lease,
        stream_grace: settings.stream_grace,
        answer_timeout: settings.answer_timeout,
        rate_limits: cfg.rate_limits == Switch::On,
        interest_wait: Duration::from_secs(cfg.interest_wait),
    }
}

/// The host name and a random suffix: unique among nodes, new at every
/// start.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(40)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// The HTTP API's per-IP limits (#26): off with `--rate-limits off`.
pub(super) fn http_limits(cfg: &Config) -> crate::http::limits::HttpLimitConfig {
    use crate::http::limits::HttpLimitConfig;
    if cfg.rate_limits == crate::config::Switch::Off {
        return HttpLimitConfig::off();
    }
    HttpLimitConfig {
        conns_per_ip: cfg.http_conn_limit,
        requests: cfg.http_rate_limit.0,
        trusted_proxies: cfg.trusted_proxy.clone(),
    }
}
