//! The operator's base files in `asterisk-conf/` and the generated files
//! must fit together, and both must be in the grammar Asterisk's config
//! parser reads: `[section]`, `[section](options)`, `key=value`,
//! `key => value`, `#include file`, `;` comments, blank lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use myturn_server::pbx::asterisk::{render, RenderOptions, EXTENSIONS_FILE, PJSIP_FILE, SIP_FILE};
use myturn_server::pbx::PbxKind;
use myturn_server::registry::PbxUser;

#[derive(Debug, Default)]
struct Conf {
    /// (section, key, value) in order; section "" before the first header.
    entries: Vec<(String, String, String)>,
    /// (section the include sits in, file).
    includes: Vec<(String, String)>,
}

fn parse(name: &str, text: &str) -> Conf {
    let mut conf = Conf::default();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap().trim();
        let at = format!("{name}:{}: {raw:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#include") {
            let file = rest.trim().trim_matches('"');
            assert!(!file.is_empty(), "{at}: empty include");
            conf.includes.push((section.clone(), file.to_owned()));
        } else if let Some(rest) = line.strip_prefix('[') {
            let (sec, _) = rest
                .split_once(']')
                .unwrap_or_else(|| panic!("{at}: unclosed section"));
            assert!(
                !sec.is_empty() && !sec.contains(['[', ']', ';', '=']),
                "{at}: bad section name"
            );
            section = sec.to_owned();
        } else if let Some((k, v)) = line.split_once("=>").or_else(|| line.split_once('=')) {
            let k = k.trim();
            assert!(
                !k.is_empty() && !k.contains(char::is_whitespace),
                "{at}: bad key"
            );
            assert!(!section.is_empty(), "{at}: key outside any section");
            conf.entries
                .push((section.clone(), k.to_owned(), v.trim().to_owned()));
        } else {
            panic!("{at}: not a line Asterisk's config parser accepts");
        }
    }
    conf
}

fn base(name: &str) -> String {
    let path = format!("{}/../../asterisk-conf/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn users() -> Vec<PbxUser> {
    ["alice", "Bob-2", "c_d"]
        .iter()
        .enumerate()
        .map(|(i, n)| PbxUser {
            name: (*n).into(),
            extension: 111_000 + i as u32,
            secret: format!("Secret{i}xxxxxxxxxxxxxxxxxx"),
        })
        .collect()
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
        ("transport", "udp"),
        ("srvlookup", "yes"),
        ("qualify", "yes"),
        ("alwaysauthreject", "yes"),
    ] {
        assert_eq!(general.get(k), Some(&v), "[general] {k}");
    }
    assert!(general.contains_key("udpbindaddr"));
    assert!(conf.includes.iter().any(|(_, f)| f == SIP_FILE));
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
    let files = render(
        PbxKind::Asterisk,
        &users(),
        &RenderOptions::default(),
        false,
    );
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
        assert_eq!(keys["nat"], "force_rport,comedia");
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
    let files = render(
        PbxKind::AsteriskPjsip,
        &users(),
        &RenderOptions::default(),
        false,
    );
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
