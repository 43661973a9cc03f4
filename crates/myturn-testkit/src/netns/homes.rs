//! Homes behind NAT routers: per site a client namespace behind a router
//! namespace (nftables masquerade, only replies let back in) whose WAN
//! side is a veth to this namespace, the "internet".

use std::net::IpAddr;

use super::bridge::Bridge;
use super::{available, nft, run, run_in, sh};

/// What a home router does to its users' packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// `masquerade random,fully-random`: every flow gets a random public
    /// port (a symmetric NAT); only replies get back in.
    Symmetric,
    /// Plain `masquerade`: the source port is kept where it can be.
    PortPreserving,
}

/// One home: a client namespace behind a router namespace whose WAN side
/// is a veth to this (the "internet") namespace.
#[derive(Debug)]
pub struct Site {
    /// Where the client runs (`10.0.0.2/24`, the same in every site, as
    /// two homes' private addresses often are).
    pub client_ns: String,
    pub router_ns: String,
    /// The router's public address: what the server sees.
    pub wan: IpAddr,
    /// This namespace's address on the router's link.
    pub host: IpAddr,
    host_if: String,
}

/// Sites behind NAT routers, all reaching this namespace.
#[derive(Debug)]
pub struct Homes {
    pub sites: Vec<Site>,
    /// The jitter bridge, if one site has it ([`Homes::with_jitter`]).
    bridge: Option<Bridge>,
}

/// Random delay on one site's access link: that site's client reaches its
/// router through a bridge namespace.
#[derive(Debug, Clone, Copy)]
pub struct Jitter {
    /// Which site.
    pub site: u8,
    /// Each UDP frame, both ways, is held for a random time in
    /// `min_ms..=max_ms`.
    pub min_ms: u32,
    pub max_ms: u32,
}

impl Homes {
    /// `n` sites behind `nat`. `tag` (1..=11; 1–3 the NAT tests', 4–9 the
    /// call-quality tests', 10 the Kamailio cluster test's) keeps tests that
    /// run at the same time in different subnets (clear of
    /// [`Veth`](super::Veth)s 1..=15). `None` after SKIPPED.
    pub fn new(tag: u8, n: u8, nat: Nat) -> Option<Homes> {
        Self::build(tag, n, nat, None)
    }

    /// As [`Homes::new`], with a userspace bridge (`jitter/bridge.py`) on
    /// one site's access link delaying UDP at random (reordering it).
    pub fn with_jitter(tag: u8, n: u8, nat: Nat, jitter: Jitter) -> Option<Homes> {
        Self::build(tag, n, nat, Some(jitter))
    }

    fn build(tag: u8, n: u8, nat: Nat, jitter: Option<Jitter>) -> Option<Homes> {
        let id = std::process::id() % 10_000;
        if !available(&format!("mtp{id}{tag}")) {
            return None;
        }
        let mut homes = Homes {
            sites: Vec::new(),
            bridge: None,
        };
        for s in 0..n {
            let base = 64 + 16 * tag + 4 * s;
            let name = |kind: &str| format!("n{id}{tag}{s}{kind}");
            let site = Site {
                client_ns: name("c"),
                router_ns: name("r"),
                wan: format!("198.51.100.{}", base + 2).parse().unwrap(),
                host: format!("198.51.100.{}", base + 1).parse().unwrap(),
                host_if: name("h"),
            };
            let (r, c) = (site.router_ns.clone(), site.client_ns.clone());
            let (wan_if, lan_if, client_if) = (name("w"), name("l"), name("i"));
            let host = format!("{}/30", site.host);
            let wan = format!("{}/30", site.wan);
            homes.sites.push(site);
            run(&["ip", "netns", "add", &r]);
            run(&["ip", "netns", "add", &c]);
            let host_if = name("h");
            run(&[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &wan_if,
            ]);
            run(&["ip", "link", "set", &wan_if, "netns", &r]);
            run(&["ip", "addr", "add", &host, "dev", &host_if]);
            run(&["ip", "link", "set", &host_if, "up"]);
            match jitter.filter(|j| j.site == s) {
                None => run(&[
                    "ip", "link", "add", &lan_if, "type", "veth", "peer", "name", &client_if,
                ]),
                Some(j) => {
                    homes.bridge = Some(Bridge::start(
                        &name("b"),
                        [&lan_if, &client_if],
                        [&name("x"), &name("y")],
                        (j.min_ms, j.max_ms),
                    ));
                }
            }
            run(&["ip", "link", "set", &lan_if, "netns", &r]);
            run(&["ip", "link", "set", &client_if, "netns", &c]);
            if jitter.is_some_and(|j| j.site == s) {
                // The bridge copies frames as they were sent: their
                // checksums must be whole (no offload) and their size one
                // frame's (no segmentation offload).
                run_in(
                    &r,
                    &[
                        "ethtool", "-K", &lan_if, "tx", "off", "tso", "off", "gso", "off",
                    ],
                );
                run_in(
                    &c,
                    &[
                        "ethtool", "-K", &client_if, "tx", "off", "tso", "off", "gso", "off",
                    ],
                );
            }
            for (ns, cmd) in [
                (&r, vec!["ip", "addr", "add", &wan, "dev", &wan_if]),
                (&r, vec!["ip", "link", "set", &wan_if, "up"]),
                (&r, vec!["ip", "addr", "add", "10.0.0.1/24", "dev", &lan_if]),
                (&r, vec!["ip", "link", "set", &lan_if, "up"]),
                (&r, vec!["ip", "link", "set", "lo", "up"]),
                (
                    &r,
                    vec![
                        "ip",
                        "route",
                        "add",
                        "default",
                        "via",
                        &host[..host.len() - 3],
                    ],
                ),
                (&r, vec!["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
                (
                    &c,
                    vec!["ip", "addr", "add", "10.0.0.2/24", "dev", &client_if],
                ),
                (&c, vec!["ip", "link", "set", &client_if, "up"]),
                (&c, vec!["ip", "link", "set", "lo", "up"]),
                (&c, vec!["ip", "route", "add", "default", "via", "10.0.0.1"]),
            ] {
                run_in(ns, &cmd);
            }
            let masq = match nat {
                Nat::Symmetric => "masquerade random,fully-random",
                Nat::PortPreserving => "masquerade",
            };
            nft(
                &r,
                &format!(
                    "table ip nat {{\n\
                       chain post {{ type nat hook postrouting priority srcnat; policy accept; oifname \"{wan_if}\" {masq}; }}\n\
                     }}\n\
                     table inet filter {{\n\
                       chain through {{ type filter hook forward priority 0; policy drop;\n\
                         ct state established,related accept;\n\
                         iifname \"{lan_if}\" oifname \"{wan_if}\" accept; }}\n\
                     }}\n"
                ),
            );
        }
        Some(homes)
    }
}

impl Site {
    /// The router drops `percent` of the UDP datagrams to or from the
    /// ports `lo..=hi` (the media relay's) at random, both ways
    /// (nftables `numgen random`; this kernel has no netem). 0 removes
    /// the rule.
    pub fn drop_udp(&self, lo: u16, hi: u16, percent: u32) {
        let _ = sh(&[
            "ip",
            "netns",
            "exec",
            &self.router_ns,
            "nft",
            "delete",
            "table",
            "inet",
            "loss",
        ]);
        if percent == 0 {
            return;
        }
        nft(
            &self.router_ns,
            &format!(
                "table inet loss {{\n\
                   chain lossy {{ type filter hook forward priority -10; policy accept;\n\
                     udp dport {lo}-{hi} numgen random mod 100 < {percent} drop;\n\
                     udp sport {lo}-{hi} numgen random mod 100 < {percent} drop; }}\n\
                 }}\n"
            ),
        );
    }
}

impl Drop for Homes {
    fn drop(&mut self) {
        drop(self.bridge.take());
        for s in &self.sites {
            let _ = sh(&["ip", "link", "del", &s.host_if]);
            let _ = sh(&["ip", "netns", "del", &s.client_ns]);
            let _ = sh(&["ip", "netns", "del", &s.router_ns]);
        }
    }
}
