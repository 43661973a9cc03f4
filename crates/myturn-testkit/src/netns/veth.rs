//! One namespace joined to this one by a veth pair, whose traffic a test
//! can cut with nftables.

use std::net::IpAddr;

use super::{available, nft, run, run_in, sh};

/// A namespace with one veth to the host: the host side has `host`, the
/// namespace side `inside` (a /30 of 198.51.100.0/24). Removed on drop.
#[derive(Debug)]
pub struct Veth {
    /// The namespace's name.
    pub ns: String,
    host_if: String,
    /// This namespace's address on the link.
    pub host: IpAddr,
    /// The other namespace's address on the link.
    pub inside: IpAddr,
}

impl Veth {
    /// The link numbered `index` (1..=63; tests that run at the same time
    /// take different ones). `None` (after SKIPPED) when namespaces cannot
    /// be made here.
    pub fn new(index: u8) -> Option<Veth> {
        let ns = format!("mtl{}-{index}", std::process::id());
        if !available(&ns) {
            return None;
        }
        run(&["ip", "netns", "add", &ns]);
        let base = 4 * index;
        let host_if = format!("mth{}{index}", std::process::id() % 10_000);
        let ns_if = format!("mtc{}{index}", std::process::id() % 10_000);
        let net = Veth {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host: format!("198.51.100.{}", base + 1).parse().unwrap(),
            inside: format!("198.51.100.{}", base + 2).parse().unwrap(),
        };
        let host = format!("{}/30", net.host);
        let inside = format!("{}/30", net.inside);
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        run(&["ip", "link", "set", &ns_if, "netns", &ns]);
        run(&["ip", "addr", "add", &host, "dev", &host_if]);
        run(&["ip", "link", "set", &host_if, "up"]);
        run_in(&ns, &["ip", "addr", "add", &inside, "dev", &ns_if]);
        run_in(&ns, &["ip", "link", "set", &ns_if, "up"]);
        run_in(&ns, &["ip", "link", "set", "lo", "up"]);
        Some(net)
    }

    /// Drops what the namespace sends and receives: all of it, or only
    /// UDP (SIP and media) while HTTP and the event stream still work.
    pub fn cut(&self, udp_only: bool) {
        let rule = if udp_only {
            "meta l4proto udp drop"
        } else {
            "drop"
        };
        nft(
            &self.ns,
            &format!(
                "table inet vanish {{\n\
                   chain in {{ type filter hook input priority 0; policy accept; {rule}; }}\n\
                   chain out {{ type filter hook output priority 0; policy accept; {rule}; }}\n\
                 }}\n"
            ),
        );
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.host_if]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}
