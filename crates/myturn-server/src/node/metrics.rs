//! Prometheus text exposition for `GET /metrics`. Counts only, never names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use myturn_wire::Status;

use super::histogram::Histogram;
use crate::core::effects::PairMade;
use crate::core::matching::PairKind;
use crate::pbx::PbxSync;
use crate::prom::counter;

/// Pairings by kind (shared interest, fallback, plain), and a wait-time
/// histogram per kind (one observation per side of each pair).
#[derive(Debug, Default)]
pub struct PairingMetrics {
    made: [AtomicU64; PairKind::ALL.len()],
    waits: [Histogram; PairKind::ALL.len()],
}

impl PairingMetrics {
    fn slot(kind: PairKind) -> usize {
        PairKind::ALL.iter().position(|&k| k == kind).unwrap_or(0)
    }

    /// Counts pairs made.
    pub fn record(&self, made: &[PairMade]) {
        for p in made {
            let i = Self::slot(p.kind);
            if let (Some(n), Some(h)) = (self.made.get(i), self.waits.get(i)) {
                n.fetch_add(1, Ordering::Relaxed);
                for w in p.waited {
                    h.observe(w);
                }
            }
        }
    }

    /// Pairs made of `kind`.
    pub fn made(&self, kind: PairKind) -> u64 {
        self.made
            .get(Self::slot(kind))
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP myturn_pairings_by_kind_total Pairs made since start, by kind: shared (an interest in common), fallback (one gave interests nobody shared in time), plain.\n# TYPE myturn_pairings_by_kind_total counter");
        for (kind, n) in PairKind::ALL.iter().zip(&self.made) {
            let _ = writeln!(
                out,
                "myturn_pairings_by_kind_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        let name = "myturn_pair_wait_seconds";
        let _ = writeln!(out, "# HELP {name} Time from entering the pool to being paired, per side, by the pair's kind.\n# TYPE {name} histogram");
        for (kind, h) in PairKind::ALL.iter().zip(&self.waits) {
            h.render(out, name, &format!("kind=\"{}\"", kind.as_str()));
        }
    }
}

/// How often the console's history is sampled, and how much is kept.
pub(crate) const HISTORY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
const HISTORY_LEN: usize = 120;

/// Why a page's media datagram was dropped by the WebSocket media
/// bridge (`GET /media`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebMediaDrop {
    /// Not an RTP packet (too short, wrong version, too long), or a text
    /// message that is no control message.
    Malformed,
    /// Over the page's rate.
    Rate,
    /// Before the page named its peer: nowhere to go.
    NoPeer,
}

impl WebMediaDrop {
    /// Every reason, in the order of [`WebMediaMetrics::dropped`].
    pub const ALL: [WebMediaDrop; 3] = [
        WebMediaDrop::Malformed,
        WebMediaDrop::Rate,
        WebMediaDrop::NoPeer,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            WebMediaDrop::Malformed => "malformed",
            WebMediaDrop::Rate => "rate",
            WebMediaDrop::NoPeer => "no_peer",
        }
    }
}

/// The browser media bridge's counters.
#[derive(Debug, Default)]
pub struct WebMediaMetrics {
    /// Bridges open now.
    pub open: AtomicU64,
    /// Datagrams carried page → relay.
    pub to_relay: AtomicU64,
    /// Datagrams carried relay → page.
    pub to_page: AtomicU64,
    /// Page datagrams dropped, by [`WebMediaDrop`] (in its `ALL` order).
    pub dropped: [AtomicU64; 3],
    /// Bridges open now per user (the per-user cap's count).
    pub per_user: Mutex<std::collections::HashMap<String, usize>>,
    /// Bridges refused by the per-user cap.
    pub refused: AtomicU64,
}

impl WebMediaMetrics {
    /// Counts one dropped datagram.
    pub fn count_drop(&self, why: WebMediaDrop) {
        self.dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP myturn_web_media_bridges Browser media bridges (GET /media) open now.\n# TYPE myturn_web_media_bridges gauge\nmyturn_web_media_bridges {}", ld(&self.open));
        let _ = writeln!(out, "# HELP myturn_web_media_datagrams_total Datagrams the browser media bridges carried, by direction.\n# TYPE myturn_web_media_datagrams_total counter");
        let _ = writeln!(
            out,
            "myturn_web_media_datagrams_total{{direction=\"to_relay\"}} {}",
            ld(&self.to_relay)
        );
        let _ = writeln!(
            out,
            "myturn_web_media_datagrams_total{{direction=\"to_page\"}} {}",
            ld(&self.to_page)
        );
        let _ = writeln!(out, "# HELP myturn_web_media_refused_total Browser media bridges refused: the user had as many open as allowed.\n# TYPE myturn_web_media_refused_total counter\nmyturn_web_media_refused_total {}", ld(&self.refused));
        let _ = writeln!(out, "# HELP myturn_web_media_dropped_total Page datagrams the media bridges dropped, by reason.\n# TYPE myturn_web_media_dropped_total counter");
        for why in WebMediaDrop::ALL {
            let _ = writeln!(
                out,
                "myturn_web_media_dropped_total{{reason=\"{}\"}} {}",
                why.as_str(),
                ld(&self.dropped[why as usize])
            );
        }
    }
}

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The browser media bridge (`GET /media`).
    pub web_media: WebMediaMetrics,
    /// Key figures over the last hour (`GET /v1/admin/history`).
    pub history: Mutex<std::collections::VecDeque<myturn_wire::MetricsSample>>,
    /// TLS handshakes that failed or timed out (`--tls-cert`).
    pub tls_handshake_failures: std::sync::Arc<AtomicU64>,
    /// Successful `POST /v1/users`.
    pub registrations: AtomicU64,
    /// Pairs made, by kind, with how long each side waited.
    pub pairings: PairingMetrics,
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

/// A point-in-time view of the registry, taken in one store step.
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
    pub fn render(&self, g: &Gauges, pbx: &PbxSync) -> String {
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
        self.pairings.render(&mut out);
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
        self.web_media.render(&mut out);
        pbx.render_metrics(&mut out);
        let _ = writeln!(out, "# HELP myturn_http_requests_total HTTP requests answered.\n# TYPE myturn_http_requests_total counter");
        let m = self.http.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route, status), v) in m.iter() {
            let _ = writeln!(out, "myturn_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {v}");
        }
        out
    }
}
