//! What the built-in PBX shows of itself: its `/metrics` lines and the
//! admin media view. Counts only, never names or Call-IDs as labels.

use std::fmt::Write as _;

use myturn_pbx::core::Stats;
use myturn_pbx::driver::{MediaSnapshot, SipFigures};
use myturn_pbx::relay::LegStats;
use myturn_wire::{AdminMedia, MediaCall, MediaCounters};

use crate::prom::counter;

/// The SIP side: bindings, blocked sources, and the registrar's and
/// proxy's counters.
pub(super) fn render_sip(out: &mut String, sip: &SipFigures) {
    let (st, bindings, blocked) = (&sip.stats, sip.bindings, sip.blocked);
    let _ = writeln!(out, "# HELP myturn_sip_bindings Users registered with the built-in PBX.\n# TYPE myturn_sip_bindings gauge\nmyturn_sip_bindings {bindings}");
    let _ = writeln!(out, "# HELP myturn_sip_blocked_sources IPs the built-in PBX ignores now (flooding, or repeated authentication failures).\n# TYPE myturn_sip_blocked_sources gauge\nmyturn_sip_blocked_sources {blocked}");
    let _ = writeln!(out, "# HELP myturn_sip_tracked_sources Source IPs the SIP flood guard keeps counts for.\n# TYPE myturn_sip_tracked_sources gauge\nmyturn_sip_tracked_sources {}", sip.tracked);
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
            "Times a source IP was blocked after repeated authentication failures.",
            st.blocks,
        ),
        (
            "myturn_sip_flood_blocks_total",
            "Times a source IP was blocked for sending past --sip-rate-limit.",
            st.flood_blocks,
        ),
        (
            "myturn_sip_blocked_packets_total",
            "Datagrams from blocked IPs, dropped before parsing.",
            st.blocked_packets,
        ),
        (
            "myturn_sip_blocked_bytes_total",
            "Bytes of the datagrams dropped from blocked IPs.",
            st.blocked_bytes,
        ),
        (
            "myturn_sip_unanswered_total",
            "Answers withheld from sources that had not proved a password and were past --sip-unauth-limit.",
            st.unanswered,
        ),
        (
            "myturn_sip_untracked_total",
            "Datagrams from sources the full flood-guard table could not track.",
            st.untracked,
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
        counter(out, name, help, v);
    }
}

/// The media relay's figures: totals, ports, and one series per relayed
/// call and side (labelled with the relay's call number, not the SIP
/// Call-ID, which would be an unbounded label set of secrets' neighbours).
pub(super) fn render_media(out: &mut String, m: &MediaSnapshot, st: &Stats) {
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
    let LegStats {
        packets,
        bytes,
        dropped,
    } = m.totals;
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

/// `GET /v1/admin/media`: the relay's totals and one entry per anchored
/// call, with each side's counters where the built-in relay carries it.
pub(super) fn admin_media(m: &MediaSnapshot, st: &Stats) -> AdminMedia {
    let counters = |s: LegStats| MediaCounters {
        packets: s.packets,
        bytes: s.bytes,
        dropped: s.dropped,
    };
    let calls = m
        .calls
        .iter()
        .map(|c| {
            let relayed = m.relayed.iter().find(|r| r.id == c.id);
            let (caller, callee) = match relayed {
                Some(r) => (counters(r.legs[0]), counters(r.legs[1])),
                None => (
                    MediaCounters {
                        packets: c.totals.packets,
                        bytes: c.totals.bytes,
                        dropped: c.totals.errors,
                    },
                    MediaCounters::default(),
                ),
            };
            MediaCall {
                id: c.id,
                sip_call_id: c.call_id.clone(),
                users: c.users.clone(),
                ports: c.ports,
                caller,
                callee,
            }
        })
        .collect();
    AdminMedia {
        mode: m.mode.to_owned(),
        ports_free: m.ports_free as u64,
        ports_capacity: m.ports_capacity as u64,
        packets: m.totals.packets,
        bytes: m.totals.bytes,
        dropped: m.totals.dropped,
        exhausted: st.media_exhausted,
        calls,
    }
}
