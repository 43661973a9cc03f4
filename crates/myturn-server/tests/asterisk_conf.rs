//! The operator's base files in `asterisk-conf/` and the generated files
//! must fit together, and both must be in the grammar Asterisk's config
//! parser reads: `[section]`, `[section](options)`, `key=value`,
//! `key => value`, `#include file`, `;` comments, blank lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};

use myturn_server::core::PbxUser;
use myturn_server::pbx::asterisk::{
    render, RenderOptions, Rendered, EXTENSIONS_FILE, PJSIP_ENDPOINT_TEMPLATE, PJSIP_FILE,
    RTP_HOLD_TIMEOUT_SECS, RTP_TIMEOUT_SECS, SIP_FILE,
};
use myturn_server::pbx::PbxKind;

/// One `[name]` or `[name](options)` section, as Asterisk's config parser
/// builds it: the variables of every template it inherits first, then its
/// own.
#[derive(Debug, Default, Clone)]
struct Section {
    name: String,
    /// `(!)`: a template. Asterisk skips templates when it walks the
    /// sections, so PJSIP makes no object of one.
    template: bool,
    /// (key, value) in order, inherited ones first.
    entries: Vec<(String, String)>,
}

impl Section {
    /// The value that applies: the last one (a later line overrides an
    /// inherited one).
    fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> HashSet<&str> {
        self.entries.iter().map(|(k, _)| k.as_str()).collect()
    }
}

#[derive(Debug, Default)]
struct Conf {
    /// Every section in order, templates included.
    sections: Vec<Section>,
    /// (section, key, value) of the sections that are not templates, in
    /// order, inherited variables included; section "" never occurs.
    entries: Vec<(String, String, String)>,
    /// (section the include sits in, file).
    includes: Vec<(String, String)>,
}

impl Conf {
    /// The sections called `name` that are not templates.
    fn named(&self, name: &str) -> Vec<&Section> {
        self.sections
            .iter()
            .filter(|s| s.name == name && !s.template)
            .collect()
    }

    /// The one non-template section called `name` with `type=kind`.
    fn object(&self, name: &str, kind: &str) -> &Section {
        let found: Vec<_> = self
            .named(name)
            .into_iter()
            .filter(|s| s.get("type") == Some(kind))
            .collect();
        assert_eq!(found.len(), 1, "[{name}] type={kind}: {found:?}");
        found[0]
    }

    /// `[general]` (or another single section) as a map.
    fn map(&self, name: &str) -> HashMap<&str, &str> {
        self.named(name)
            .iter()
            .flat_map(|s| s.entries.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

fn parse(name: &str, text: &str) -> Conf {
    let mut conf = Conf::default();
    let mut current: Option<Section> = None;
    let finish = |conf: &mut Conf, s: Option<Section>| {
        if let Some(s) = s {
            if !s.template {
                for (k, v) in &s.entries {
                    conf.entries.push((s.name.clone(), k.clone(), v.clone()));
                }
            }
            conf.sections.push(s);
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap().trim();
        let at = format!("{name}:{}: {raw:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#include") {
            let file = rest.trim().trim_matches('"');
            assert!(!file.is_empty(), "{at}: empty include");
            let sec = current.as_ref().map_or("", |s| s.name.as_str());
            conf.includes.push((sec.to_owned(), file.to_owned()));
        } else if let Some(rest) = line.strip_prefix('[') {
            let (sec, after) = rest
                .split_once(']')
                .unwrap_or_else(|| panic!("{at}: unclosed section"));
            assert!(
                !sec.is_empty() && !sec.contains(['[', ']', ';', '=', '(', ')']),
                "{at}: bad section name"
            );
            finish(&mut conf, current.take());
            let mut s = Section {
                name: sec.to_owned(),
                ..Section::default()
            };
            if !after.is_empty() {
                let opts = after
                    .strip_prefix('(')
                    .and_then(|o| o.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("{at}: junk after the section name"));
                for opt in opts.split(',').map(str::trim) {
                    match opt {
                        "!" => s.template = true,
                        "+" => panic!("{at}: '+' (append) is not used here"),
                        "" => panic!("{at}: empty section option"),
                        base => {
                            // Asterisk: "Inheritance requested, but category
                            // '...' does not exist" and the file fails.
                            let t = conf
                                .sections
                                .iter()
                                .rev()
                                .find(|t| t.name == base)
                                .unwrap_or_else(|| panic!("{at}: inherits unknown [{base}]"));
                            s.entries.extend(t.entries.iter().cloned());
                        }
                    }
                }
            }
            current = Some(s);
        } else if let Some((k, v)) = line.split_once("=>").or_else(|| line.split_once('=')) {
            let k = k.trim();
            assert!(
                !k.is_empty() && !k.contains(char::is_whitespace),
                "{at}: bad key"
            );
            let s = current
                .as_mut()
                .unwrap_or_else(|| panic!("{at}: key outside any section"));
            s.entries.push((k.to_owned(), v.trim().to_owned()));
        } else {
            panic!("{at}: not a line Asterisk's config parser accepts");
        }
    }
    finish(&mut conf, current.take());
    conf
}

fn base(name: &str) -> String {
    let path = format!("{}/../../asterisk-conf/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Three users, the `i`-th on extension 111000 + i.
fn users() -> Vec<PbxUser> {
    let user = |i: u32, name: &str| PbxUser {
        name: name.into(),
        extension: 111_000 + i,
        secret: format!("Secret{i}xxxxxxxxxxxxxxxxxx"),
    };
    vec![user(0, "alice"), user(1, "Bob-2"), user(2, "c_d")]
}

/// The files `kind` generates for [`users`], secrets included, with the
/// wideband codec offered or not.
fn rendered(kind: PbxKind, wideband: bool) -> Vec<Rendered> {
    let opts = RenderOptions {
        wideband,
        ..RenderOptions::default()
    };
    render(kind, &users(), &opts, false)
}

#[test]
fn sip_conf_general_has_the_original_design_settings_and_includes_ours() {
    let conf = parse("sip.conf", &base("sip.conf"));
    let general: HashMap<&str, &str> = conf
        .entries
        .iter()
        .filter(|(s, _, _)| s == "general")
        .map(|(_, k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (k, v) in [
        ("context", "public"),
        ("allowoverlap", "no"),
        ("tcpenable", "no"),
        // UDP as in the original design, and TLS beside it (#14).
        ("transport", "udp,tls"),
        ("tlsenable", "yes"),
        ("tlsbindaddr", "0.0.0.0:5061"),
        ("srvlookup", "yes"),
        ("qualify", "yes"),
        ("alwaysauthreject", "yes"),
    ] {
        assert_eq!(general.get(k), Some(&v), "[general] {k}");
    }
    assert!(general.contains_key("udpbindaddr"));
    assert!(conf.includes.iter().any(|(_, f)| f == SIP_FILE));
}

/// chan_sip options that must be set once, in `[general]`: `nat` because a
/// peer whose `nat=` differs from the global one is discoverable (Asterisk
/// warns on load), the others so no generated peer can drift from them.
const SIP_GENERAL_ONLY: &[(&str, &str)] = &[
    ("nat", "force_rport,comedia"),
    ("directmedia", "no"),
    ("rtptimeout", "30"),
    ("rtpholdtimeout", "300"),
];

#[test]
fn sip_conf_general_has_the_hardened_nat_media_and_rtp_settings() {
    let conf = parse("sip.conf", &base("sip.conf"));
    let general = conf.map("general");
    for (k, v) in SIP_GENERAL_ONLY {
        assert_eq!(general.get(k), Some(v), "[general] {k}");
    }
    // The same timeouts as the generated PJSIP endpoints.
    assert_eq!(general["rtptimeout"], RTP_TIMEOUT_SECS.to_string());
    assert_eq!(general["rtpholdtimeout"], RTP_HOLD_TIMEOUT_SECS.to_string());
    // chan_sip: rtpholdtimeout must be greater than rtptimeout.
    let secs = |k: &str| general[k].parse::<u32>().unwrap();
    assert!(secs("rtpholdtimeout") > secs("rtptimeout"));
    assert_eq!(general["disallow"], "all");
    assert_eq!(general["allow"], "slin");
    assert_eq!(general["allowguest"], "no");
    // The generated peers are included after [general] is complete.
    assert_eq!(conf.includes, vec![("general".to_owned(), SIP_FILE.into())]);
}

#[test]
fn generated_chan_sip_peers_carry_no_option_that_differs_from_general() {
    let general_conf = parse("sip.conf", &base("sip.conf"));
    let general = general_conf.map("general");
    // Per peer by design: who it is, where its calls land, its codecs.
    let allowed: HashSet<&str> = [
        "type", "context", "host", "secret", "callerid", "disallow", "allow",
    ]
    .into();
    for wideband in [false, true] {
        let files = rendered(PbxKind::Asterisk, wideband);
        let sip = parse(SIP_FILE, &files[0].content);
        assert_eq!(sip.sections.len(), users().len());
        for peer in &sip.sections {
            assert!(!peer.template, "[{}]", peer.name);
            let keys = peer.keys();
            for (k, _) in SIP_GENERAL_ONLY {
                assert!(!keys.contains(k), "[{}] sets {k}=", peer.name);
            }
            let extra: Vec<_> = keys.difference(&allowed).collect();
            assert!(extra.is_empty(), "[{}] sets {extra:?}", peer.name);
            // Of the options [general] also sets, only context and the
            // codecs may be per peer; nat-like options never are.
            for k in keys.iter().filter(|k| general.contains_key(*k)) {
                assert!(
                    ["context", "disallow", "allow"].contains(k),
                    "[{}] overrides [general] {k}",
                    peer.name
                );
            }
        }
    }
}

#[test]
fn rtp_conf_has_strict_rtp_and_a_port_range() {
    let conf = parse("rtp.conf", &base("rtp.conf"));
    let general = conf.map("general");
    assert_eq!(general["strictrtp"], "yes");
    let probation: u32 = general["probation"].parse().unwrap();
    assert!(probation >= 1);
    let start: u16 = general["rtpstart"].parse().unwrap();
    let end: u16 = general["rtpend"].parse().unwrap();
    assert!(1024 < start && start < end, "{start}..{end}");
    assert_eq!(conf.sections.len(), 1);
}

#[test]
fn extensions_conf_includes_ours_inside_phones() {
    let conf = parse("extensions.conf", &base("extensions.conf"));
    assert_eq!(
        conf.includes,
        vec![("phones".to_owned(), EXTENSIONS_FILE.to_owned())]
    );
    let pj = parse("pjsip.conf", &base("pjsip.conf"));
    assert!(pj.includes.iter().any(|(_, f)| f == PJSIP_FILE));
    parse("manager.conf", &base("manager.conf"));
    parse("modules.conf", &base("modules.conf"));
}

#[test]
fn generated_chan_sip_files_parse_and_carry_each_user() {
    let files = rendered(PbxKind::Asterisk, false);
    let sip = parse(SIP_FILE, &files[0].content);
    for u in users() {
        let keys: HashMap<&str, &str> = sip
            .entries
            .iter()
            .filter(|(s, _, _)| *s == u.name)
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(keys["type"], "friend");
        assert_eq!(keys["context"], "phones");
        assert_eq!(keys["host"], "dynamic");
        assert_eq!(keys["secret"], u.secret);
        assert_eq!(keys["disallow"], "all");
        assert_eq!(keys["allow"], "slin");
    }
    // The dialplan file is included inside [phones]: no section of its own.
    let ext = parse(EXTENSIONS_FILE, &format!("[phones]\n{}", files[1].content));
    let lines: Vec<_> = ext
        .entries
        .iter()
        .map(|(_, k, v)| format!("{k} => {v}"))
        .collect();
    assert_eq!(lines.len(), 3 * users().len());
    assert_eq!(lines[0], "exten => 111000,1,NoOp(myturn: calling alice)");
    assert_eq!(lines[1], "same => n,Dial(SIP/alice,60)");
    assert_eq!(lines[2], "same => n,Hangup()");
    assert!(
        !files[1]
            .content
            .lines()
            .any(|l| l.trim_start().starts_with('[')),
        "the dialplan include must not open a context"
    );
}

#[test]
fn generated_pjsip_file_has_endpoint_auth_and_aor_per_user() {
    let files = rendered(PbxKind::AsteriskPjsip, false);
    let pj = parse(PJSIP_FILE, &files[0].content);
    for u in users() {
        let types: Vec<&str> = pj
            .entries
            .iter()
            .filter(|(s, k, _)| *s == u.name && k == "type")
            .map(|(_, _, v)| v.as_str())
            .collect();
        assert_eq!(types, vec!["endpoint", "auth", "aor"]);
        assert!(pj
            .entries
            .contains(&(u.name.clone(), "password".into(), u.secret.clone())));
        assert!(pj
            .entries
            .contains(&(u.name.clone(), "username".into(), u.name.clone())));
    }
    assert!(files[1].content.contains("Dial(PJSIP/Bob-2,60)"));
}

#[test]
fn generated_pjsip_endpoints_inherit_the_hardened_settings() {
    let base_pj = parse("pjsip.conf", &base("pjsip.conf"));
    assert!(
        base_pj
            .sections
            .iter()
            .all(|s| s.name != PJSIP_ENDPOINT_TEMPLATE),
        "the template belongs to the generated file"
    );
    for wideband in [false, true] {
        let files = rendered(PbxKind::AsteriskPjsip, wideband);
        let pj = parse(PJSIP_FILE, &files[0].content);
        // The template comes first, is a template, and is the only one.
        let templates: Vec<_> = pj.sections.iter().filter(|s| s.template).collect();
        assert_eq!(templates.len(), 1);
        assert_eq!(pj.sections[0].name, PJSIP_ENDPOINT_TEMPLATE);
        assert!(pj.sections[0].template);
        for u in users() {
            let ep = pj.object(&u.name, "endpoint");
            for (k, v) in [
                ("direct_media", "no"),
                ("rtp_symmetric", "yes"),
                ("force_rport", "yes"),
                ("rewrite_contact", "yes"),
                ("rtp_timeout", &RTP_TIMEOUT_SECS.to_string()),
                ("rtp_timeout_hold", &RTP_HOLD_TIMEOUT_SECS.to_string()),
                ("context", "phones"),
                ("disallow", "all"),
                ("auth", &u.name),
                ("aors", &u.name),
            ] {
                assert_eq!(ep.get(k), Some(v), "[{}] endpoint {k}", u.name);
            }
            let codecs: Vec<_> = ep
                .entries
                .iter()
                .filter(|(k, _)| k == "allow")
                .map(|(_, v)| v.as_str())
                .collect();
            let want = if wideband {
                vec!["slin", "slin16"]
            } else {
                vec!["slin"]
            };
            assert_eq!(codecs, want);
            // Each option appears once: nothing overrides the template.
            let mut seen = HashSet::new();
            for (k, _) in ep.entries.iter().filter(|(k, _)| k != "allow") {
                assert!(seen.insert(k), "[{}] sets {k} twice", u.name);
            }
            // PJSIP refuses an object with an option of another type
            // ("Could not find option suitable for category"): the auth
            // and the aor must not inherit the endpoint settings.
            let auth = pj.object(&u.name, "auth");
            assert_eq!(
                auth.keys(),
                ["type", "auth_type", "username", "password"].into()
            );
            let aor = pj.object(&u.name, "aor");
            assert_eq!(
                aor.keys(),
                [
                    "type",
                    "max_contacts",
                    "remove_existing",
                    "qualify_frequency"
                ]
                .into()
            );
        }
    }
}

#[test]
fn both_base_files_offer_sip_over_tls_beside_udp() {
    let conf = parse("pjsip.conf", &base("pjsip.conf"));
    let udp = conf.map("transport-udp");
    assert_eq!(udp.get("protocol"), Some(&"udp"));
    let tls = conf.map("transport-tls");
    assert_eq!(tls.get("type"), Some(&"transport"));
    assert_eq!(tls.get("protocol"), Some(&"tls"));
    assert_eq!(tls.get("bind"), Some(&"0.0.0.0:5061"));
    assert!(tls.contains_key("cert_file") && tls.contains_key("priv_key_file"));
    let sip = parse("sip.conf", &base("sip.conf"));
    let general = sip.map("general");
    assert!(general.contains_key("tlscertfile") && general.contains_key("tlsprivatekey"));
}
