//! Prometheus text exposition for `GET /metrics`. Counts only, never names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use myturn_wire::Status;

/// How often the console's history is sampled, and how much is kept.
pub(crate) const HISTORY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
const HISTORY_LEN: usize = 120;

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Key figures over the last hour (`GET /v1/admin/history`).
    pub history: Mutex<std::collections::VecDeque<myturn_wire::MetricsSample>>,
    /// TLS handshakes that failed or timed out (`--tls-cert`).
    pub tls_handshake_failures: std::sync::Arc<AtomicU64>,
    /// Successful `POST /v1/users`.
    pub registrations: AtomicU64,
    /// Users removed by `DELETE /v1/me`.
    pub logouts: AtomicU64,
    /// Users removed by an admin.
    pub kicks: AtomicU64,
    /// Users removed by the lease.
    pub expiries: AtomicU64,
    /// Requests refused with 401 (bad, expired or revoked tokens).
    pub auth_failures: AtomicU64,
    /// Spent refresh tokens presented again (theft suspected).
    pub refresh_reuse: AtomicU64,
    /// Requests refused with 429 by a rate limit.
    pub rate_limited: AtomicU64,
    /// WebSocket upgrades refused by a connection cap.
    pub ws_rejected: AtomicU64,
    /// WebSockets closed because the client did not read its events.
    pub ws_too_slow: AtomicU64,
    /// Lobby chat lines said.
    pub lobby_messages: AtomicU64,
    /// Lobby chat lines queued to sockets (fan-out).
    pub lobby_deliveries: AtomicU64,
    /// Bans issued.
    pub bans: AtomicU64,
    /// Reports filed.
    pub reports: AtomicU64,
    http: Mutex<BTreeMap<(String, String, u16), u64>>,
}

/// A point-in-time view of the registry, taken under its lock.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// Users per status.
    pub by_status: Vec<(Status, u64)>,
    /// Users waiting in the pool.
    pub waiting: u64,
    /// Pairs made since start.
    pub pairings_total: u64,
    /// Open WebSockets.
    pub websockets: u64,
}

/// PBX figures.
#[derive(Debug, Default, Clone)]
pub struct PbxFigures {
    /// Files written.
    pub config_writes: u64,
    /// Failed writes.
    pub write_failures: u64,
    /// Reloads done.
    pub reloads: u64,
    /// Failed reloads.
    pub reload_failures: u64,
    /// 1 when in sync.
    pub in_sync: bool,
    /// The built-in PBX's counters, bindings and blocked sources.
    pub sip: Option<(myturn_pbx::core::Stats, usize, usize)>,
    /// The built-in PBX's media side.
    pub media: Option<myturn_pbx::driver::MediaSnapshot>,
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

impl Metrics {
    /// Adds a sample to the hour of history, dropping the oldest.
    pub fn record(&self, sample: myturn_wire::MetricsSample) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == HISTORY_LEN {
            h.pop_front();
        }
        h.push_back(sample);
    }

    /// Counts one answered request.
    pub fn count_http(&self, method: &str, route: &str, status: u16) {
        let mut m = self.http.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((method.to_owned(), route.to_owned(), status))
            .or_insert(0) += 1;
    }

    /// Renders the exposition text.
    pub fn render(&self, g: &Gauges, pbx: &PbxFigures) -> String {
        let mut out = String::with_capacity(4096);
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP myturn_users Current users by status.\n# TYPE myturn_users gauge"
        );
        for (s, n) in &g.by_status {
            let _ = writeln!(out, "myturn_users{{status=\"{s}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP myturn_waiting_users Ready users waiting for a partner.\n# TYPE myturn_waiting_users gauge\nmyturn_waiting_users {}", g.waiting);
        counter(
            &mut out,
            "myturn_pairings_total",
            "Pairs made since start.",
            g.pairings_total,
        );
        counter(
            &mut out,
            "myturn_registrations_total",
            "Users registered since start.",
            ld(&self.registrations),
        );
        let _ = writeln!(out, "# HELP myturn_removals_total Users removed, by reason.\n# TYPE myturn_removals_total counter");
        for (reason, v) in [
            ("logout", &self.logouts),
            ("kick", &self.kicks),
            ("expired", &self.expiries),
        ] {
            let _ = writeln!(
                out,
                "myturn_removals_total{{reason=\"{reason}\"}} {}",
                ld(v)
            );
        }
        counter(
            &mut out,
            "myturn_auth_failures_total",
            "Requests refused for bad, expired or revoked credentials.",
            ld(&self.auth_failures),
        );
        counter(
            &mut out,
            "myturn_refresh_reuse_total",
            "Spent refresh tokens presented again; each revoked a session.",
            ld(&self.refresh_reuse),
        );
        counter(
            &mut out,
            "myturn_tls_handshake_failures_total",
            "TLS handshakes on the API port that failed or timed out (plain HTTP sent to it, bad clients, scanners).",
            self.tls_handshake_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "myturn_rate_limited_total",
            "Requests refused by a rate limit.",
            ld(&self.rate_limited),
        );
        let _ = writeln!(out, "# HELP myturn_websockets Open event streams (users and admins).\n# TYPE myturn_websockets gauge\nmyturn_websockets {}", g.websockets);
        counter(
            &mut out,
            "myturn_websocket_rejected_total",
            "Event-stream upgrades refused by a connection cap.",
            ld(&self.ws_rejected),
        );
        counter(
            &mut out,
            "myturn_websocket_too_slow_total",
            "Event streams closed for not reading their events.",
            ld(&self.ws_too_slow),
        );
        counter(
            &mut out,
            "myturn_lobby_messages_total",
            "Lobby chat lines said.",
            ld(&self.lobby_messages),
        );
        counter(
            &mut out,
            "myturn_lobby_deliveries_total",
            "Lobby chat lines queued to event streams.",
            ld(&self.lobby_deliveries),
        );
        counter(
            &mut out,
            "myturn_bans_total",
            "Bans issued.",
            ld(&self.bans),
        );
        counter(
            &mut out,
            "myturn_reports_total",
            "Reports filed.",
            ld(&self.reports),
        );
        counter(
            &mut out,
            "myturn_pbx_config_writes_total",
            "Generated PBX files written.",
            pbx.config_writes,
        );
        counter(
            &mut out,
            "myturn_pbx_write_failures_total",
            "Failed PBX file writes.",
            pbx.write_failures,
        );
        counter(
            &mut out,
            "myturn_pbx_reloads_total",
            "PBX reloads done.",
            pbx.reloads,
        );
        counter(
            &mut out,
            "myturn_pbx_reload_failures_total",
            "Failed PBX reloads.",
            pbx.reload_failures,
        );
        let _ = writeln!(out, "# HELP myturn_pbx_in_sync 1 when the PBX holds the current state.\n# TYPE myturn_pbx_in_sync gauge\nmyturn_pbx_in_sync {}", u8::from(pbx.in_sync));
        if let Some((st, bindings, blocked)) = &pbx.sip {
            let _ = writeln!(out, "# HELP myturn_sip_bindings Users registered with the built-in PBX.\n# TYPE myturn_sip_bindings gauge\nmyturn_sip_bindings {bindings}");
            let _ = writeln!(out, "# HELP myturn_sip_blocked_sources IPs the built-in PBX ignores after repeated authentication failures.\n# TYPE myturn_sip_blocked_sources gauge\nmyturn_sip_blocked_sources {blocked}");
            for (name, help, v) in [
                (
                    "myturn_sip_registrations_total",
                    "Successful SIP registrations (and refreshes).",
                    st.registrations,
                ),
                (
                    "myturn_sip_unregistrations_total",
                    "SIP bindings removed (unregister, expiry, account removed).",
                    st.unregistrations,
                ),
                (
                    "myturn_sip_auth_failures_total",
                    "Failed SIP digest authentications (wrong password or unknown user).",
                    st.auth_failures,
                ),
                (
                    "myturn_sip_blocks_total",
                    "Times a source IP was blocked.",
                    st.blocks,
                ),
                (
                    "myturn_sip_blocked_packets_total",
                    "Datagrams ignored from blocked IPs.",
                    st.blocked_packets,
                ),
                (
                    "myturn_sip_dropped_total",
                    "Datagrams dropped (not SIP, too large, not ours).",
                    st.dropped,
                ),
                (
                    "myturn_sip_rejected_total",
                    "Malformed SIP requests answered 400/505.",
                    st.rejected,
                ),
                (
                    "myturn_sip_calls_routed_total",
                    "INVITEs routed to a registered extension.",
                    st.calls_routed,
                ),
                (
                    "myturn_sip_calls_not_found_total",
                    "INVITEs to unknown extensions (404).",
                    st.calls_not_found,
                ),
                (
                    "myturn_sip_calls_unavailable_total",
                    "INVITEs to users not registered (480).",
                    st.calls_unavailable,
                ),
            ] {
                counter(&mut out, name, help, v);
            }
        }
        if let (Some(m), Some((st, _, _))) = (&pbx.media, &pbx.sip) {
            render_media(&mut out, m, st);
        }
        let _ = writeln!(out, "# HELP myturn_http_requests_total HTTP requests answered.\n# TYPE myturn_http_requests_total counter");
        let m = self.http.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route, status), v) in m.iter() {
            let _ = writeln!(out, "myturn_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {v}");
        }
        out
    }
}

/// The media relay's figures: totals, ports, and one series per relayed
/// call and side (labelled with the relay's call number, not the SIP
/// Call-ID, which would be an unbounded label set of secrets' neighbours).
fn render_media(
    out: &mut String,
    m: &myturn_pbx::driver::MediaSnapshot,
    st: &myturn_pbx::core::Stats,
) {
    let _ = writeln!(out, "# HELP myturn_media_relay_info The media relay in use.\n# TYPE myturn_media_relay_info gauge\nmyturn_media_relay_info{{mode=\"{}\"}} 1", m.mode);
    let _ = writeln!(out, "# HELP myturn_media_calls Calls whose media is anchored now.\n# TYPE myturn_media_calls gauge\nmyturn_media_calls {}", m.calls.len());
    for (name, help, v) in [
        (
            "myturn_media_calls_total",
            "Calls whose media was anchored.",
            st.media_calls,
        ),
        (
            "myturn_media_exhausted_total",
            "Calls refused with 503: no free relay ports.",
            st.media_exhausted,
        ),
        (
            "myturn_media_failures_total",
            "SDPs that could not be anchored.",
            st.media_failures,
        ),
        (
            "myturn_media_timeouts_total",
            "Anchored calls ended for lack of media.",
            st.media_timeouts,
        ),
        (
            "myturn_media_control_retransmissions_total",
            "rtpengine control messages sent again.",
            st.control_retransmissions,
        ),
    ] {
        counter(out, name, help, v);
    }
    if m.mode != "builtin" {
        return;
    }
    let _ = writeln!(out, "# HELP myturn_relay_ports_free Relay port pairs free.\n# TYPE myturn_relay_ports_free gauge\nmyturn_relay_ports_free {}", m.ports_free);
    let _ = writeln!(out, "# HELP myturn_relay_ports_capacity Relay port pairs in --media-ports.\n# TYPE myturn_relay_ports_capacity gauge\nmyturn_relay_ports_capacity {}", m.ports_capacity);
    let (packets, bytes, dropped) = m.totals;
    counter(
        out,
        "myturn_relay_packets_total",
        "Media datagrams forwarded by the relay.",
        packets,
    );
    counter(
        out,
        "myturn_relay_bytes_total",
        "Media bytes forwarded by the relay.",
        bytes,
    );
    counter(
        out,
        "myturn_relay_dropped_total",
        "Media datagrams dropped (strangers, no destination yet, oversized).",
        dropped,
    );
    counter(
        out,
        "myturn_relay_bind_failures_total",
        "Relayed calls whose ports could not be bound.",
        m.bind_failures,
    );
    for (name, help, pick) in [
        (
            "myturn_relay_call_packets",
            "Datagrams forwarded, per relayed call and side.",
            0usize,
        ),
        (
            "myturn_relay_call_bytes",
            "Bytes forwarded, per relayed call and side.",
            1,
        ),
        (
            "myturn_relay_call_dropped",
            "Datagrams dropped, per relayed call and side.",
            2,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for c in &m.relayed {
            for (side, leg) in ["caller", "callee"].iter().zip(c.legs.iter()) {
                let v = [leg.packets, leg.bytes, leg.dropped][pick];
                let _ = writeln!(out, "{name}{{call=\"{}\",side=\"{side}\"}} {v}", c.id);
            }
        }
    }
}

impl crate::state::AppState {
    /// Registry and socket gauges for `/metrics`.
    pub(crate) async fn gauges(&self) -> Gauges {
        let counts = self.store.counts().await.unwrap_or_default();
        Gauges {
            by_status: counts.by_status,
            waiting: counts.waiting,
            pairings_total: counts.pairings_total,
            websockets: self.fanout.sockets_open() as u64,
        }
    }

    /// Samples the key figures into the console's hour of history.
    pub async fn sample_history(&self) {
        let g = self.gauges().await;
        let pbx = self.pbx_figures();
        self.metrics.record(myturn_wire::MetricsSample {
            at: self.now().unix(),
            users: g.by_status.iter().map(|(_, n)| n).sum(),
            waiting: g.waiting,
            pairings_total: g.pairings_total,
            streams: g.websockets,
            relayed_calls: pbx.media.as_ref().map_or(0, |m| m.calls.len() as u64),
            relay_packets_total: pbx.media.as_ref().map_or(0, |m| m.totals.0),
            sip_bindings: pbx.sip.as_ref().map_or(0, |s| s.1 as u64),
        });
    }

    /// PBX figures for `/metrics`.
    pub(crate) fn pbx_figures(&self) -> PbxFigures {
        self.pbx.figures()
    }
}
