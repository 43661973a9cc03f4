//! RFC 4475 and RFC 5118 torture messages (copied from `shared/sip-torture`,
//! see `tests/torture/README.md`) through the parser and the user agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Instant;

use myturn_sip::msg::{self, ParseError};
use myturn_sip::ua::{Config, UserAgent};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn load(dir: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/torture")
        .join(dir)
        .join(format!("{name}.dat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn all_files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["rfc4475", "rfc5118"] {
        let d = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/torture")
            .join(dir);
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            out.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

/// RFC 4475 §3.1.1, §3.2, §3.3, §3.4 and the valid RFC 5118 messages.
const VALID_4475: &[&str] = &[
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "badbranch",
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    "inv2543",
];
const VALID_5118: &[&str] = &[
    "ipv6-good",
    "port-ambiguous",
    "port-unambiguous",
    "via-received-param-with-delim",
    "via-received-param-no-delim",
    "ipv6-in-sdp",
    "mult-ip-in-header",
    "mult-ip-in-sdp",
    "ipv4-mapped-ipv6",
    "ipv6-correct-abnf-2-colons",
    "ipv6-bug-abnf-3-colons",
];
/// RFC 4475 §3.1.2 plus the §3.3 ones whose required answer is a 400
/// (insuf, multi01, mcl01), and RFC 5118's ipv6-bad.
const INVALID: &[(&str, &str)] = &[
    ("rfc4475", "badinv01"),
    ("rfc4475", "clerr"),
    ("rfc4475", "ncl"),
    ("rfc4475", "scalar02"),
    ("rfc4475", "scalarlg"),
    ("rfc4475", "quotbal"),
    ("rfc4475", "ltgtruri"),
    ("rfc4475", "lwsruri"),
    ("rfc4475", "lwsstart"),
    ("rfc4475", "trws"),
    ("rfc4475", "escruri"),
    ("rfc4475", "baddate"),
    ("rfc4475", "regbadct"),
    ("rfc4475", "badaspec"),
    ("rfc4475", "baddn"),
    ("rfc4475", "badvers"),
    ("rfc4475", "mismatch01"),
    ("rfc4475", "mismatch02"),
    ("rfc4475", "bigcode"),
    ("rfc4475", "insuf"),
    ("rfc4475", "multi01"),
    ("rfc4475", "mcl01"),
    ("rfc5118", "ipv6-bad"),
];

#[test]
fn every_file_is_classified() {
    let files = all_files();
    assert_eq!(files.len(), 49 + 12);
    for (name, _) in &files {
        let stem = name.trim_end_matches(".dat");
        let known = VALID_4475.contains(&stem)
            || VALID_5118.contains(&stem)
            || INVALID.iter().any(|(_, n)| *n == stem);
        assert!(known, "{name} has no expectation");
    }
}

#[test]
fn valid_messages_parse() {
    for n in VALID_4475 {
        let m = msg::parse(&load("rfc4475", n)).unwrap_or_else(|e| panic!("{n}: {e:?}"));
        assert!(m.top_via().is_some(), "{n}");
    }
    for n in VALID_5118 {
        msg::parse(&load("rfc5118", n)).unwrap_or_else(|e| panic!("{n}: {e:?}"));
    }
}

#[test]
fn invalid_messages_are_rejected() {
    for (dir, n) in INVALID {
        assert!(msg::parse(&load(dir, n)).is_err(), "{n} was accepted");
    }
}

#[test]
fn normalisation_details() {
    // wsinv: folding, compact forms, spaces before colons, Via with LWS.
    let m = msg::parse(&load("rfc4475", "wsinv")).unwrap();
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(
        m.from().unwrap().display.as_deref(),
        Some("J Rosenberg \\\"")
    );
    assert_eq!(m.cseq(), 9);
    let vias = m.vias();
    assert_eq!(vias.len(), 3, "one header line with two values, plus one");
    assert_eq!(vias[0].host, "192.0.2.2");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(
        m.header("Subject"),
        Some(""),
        "compact s: with an empty value"
    );
    assert_eq!(m.body().len(), 150);
    // intmeth: an unknown method, kept as such.
    let m = msg::parse(&load("rfc4475", "intmeth")).unwrap();
    assert_eq!(
        m.method().to_string(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert!(m.request_uri().starts_with("sip:1_unusual.URI~"));
    // dblreq: the body is framed by Content-Length; the second request is
    // not part of the first.
    let m = msg::parse(&load("rfc4475", "dblreq")).unwrap();
    assert_eq!(m.body().len(), 0);
    // Compact Contact `m:` and Content-Length `l:`.
    let m = msg::parse(&load("rfc4475", "regescrt")).unwrap();
    assert_eq!(m.name_addrs("Contact").len(), 1);
    // Errors say what is wrong.
    let e = msg::parse(&load("rfc4475", "badvers")).unwrap_err();
    assert_eq!(e.error, ParseError::Version);
    assert_eq!(e.error.status(), 505);
    let e = msg::parse(&load("rfc4475", "clerr")).unwrap_err();
    assert!(matches!(e.error, ParseError::ContentLength(_)));
}

#[test]
fn rsip_gaps_are_closed() {
    let base = "REGISTER sip:example.com SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2\r\n\
                f: <sip:a@example.com>;tag=1\r\nt: <sip:a@example.com>\r\ni: abc@x\r\nCSeq: 2 REGISTER\r\n\
                m: <sip:a@192.0.2.1>;expires=60, <sip:a@192.0.2.9>;q=0.5\r\nl: 4\r\n\r\nbodyEXTRA";
    let m = msg::parse(base.as_bytes()).unwrap();
    assert_eq!(m.call_id(), "abc@x", "compact i:");
    assert_eq!(m.vias().len(), 2, "two Vias on one line");
    let contacts = m.name_addrs("Contact");
    assert_eq!(contacts.len(), 2, "two Contacts on one line");
    assert_eq!(contacts[1].param("q"), Some("0.5"));
    assert_eq!(m.body(), b"body", "framed by Content-Length");
    // rsip's own view agrees (it received the normalised message).
    assert_eq!(m.sip.body(), b"body");
    let c = myturn_sip::digest::Challenge::parse(
        "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"",
    )
    .unwrap();
    assert_eq!(c.algorithm, myturn_sip::digest::Algorithm::Sha256);
}

fn agent() -> UserAgent {
    let cfg = Config::new(
        "192.0.2.200:5060".parse().unwrap(),
        "192.0.2.100:5060".parse().unwrap(),
        "user",
        "pw",
    );
    UserAgent::new(cfg, Box::new(StdRng::seed_from_u64(1)))
}

/// The agent's answer to `data`: its status code and, when it parses, the
/// message (a 400 echoes the request's malformed Via, so it may not).
fn answer_raw(ua: &mut UserAgent, data: &[u8]) -> Option<(u16, Option<msg::Message>)> {
    let now = Instant::now();
    ua.handle_datagram(now, "192.0.2.1:5060".parse().unwrap(), data);
    let t = ua.poll_transmit()?;
    assert!(ua.poll_transmit().is_none() || data.starts_with(b"INVITE"));
    let text = String::from_utf8_lossy(&t.payload);
    let code = text.get(8..11)?.parse().ok()?;
    Some((code, msg::parse(&t.payload).ok()))
}

fn answer(ua: &mut UserAgent, data: &[u8]) -> Option<msg::Message> {
    answer_raw(ua, data).map(|(_, m)| m.expect("our answer parses"))
}

#[test]
fn the_user_agent_answers_as_rfc_4475_requires() {
    let cases: &[(&str, Option<u16>)] = &[
        // §3.1.2: invalid requests get 400 (505 for the version); invalid
        // responses are dropped.
        ("badinv01", Some(400)),
        ("clerr", Some(400)),
        ("ncl", Some(400)),
        ("scalar02", Some(400)),
        ("scalarlg", None),
        ("quotbal", Some(400)),
        ("ltgtruri", Some(400)),
        ("lwsruri", Some(400)),
        ("lwsstart", Some(400)),
        ("trws", Some(400)),
        ("escruri", Some(400)),
        ("baddate", Some(400)),
        ("regbadct", Some(400)),
        ("badaspec", Some(400)),
        ("baddn", Some(400)),
        ("badvers", Some(505)),
        ("mismatch01", Some(400)),
        ("mismatch02", Some(400)),
        ("bigcode", None),
        // §3.3: the application's answers.
        ("insuf", Some(400)),
        ("multi01", Some(400)),
        ("mcl01", Some(400)),
        ("unkscm", Some(416)),
        ("novelsc", Some(416)),
        ("unksm2", Some(405)),
        ("bext01", Some(420)),
        ("invut", Some(415)),
        ("sdp01", Some(406)),
        ("regaut01", Some(405)),
        ("zeromf", Some(200)),
        ("intmeth", Some(501)),
        ("badbranch", Some(200)),
        ("lwsdisp", Some(200)),
        ("semiuri", Some(200)),
        ("transports", Some(200)),
    ];
    for (name, want) in cases {
        let mut ua = agent();
        let data = load("rfc4475", name);
        let got = answer_raw(&mut ua, &data);
        assert_eq!(got.as_ref().map(|(c, _)| *c), *want, "{name}");
        if let Some((_, Some(m))) = got {
            // The answer echoes the request's Call-ID when it had one.
            let req = String::from_utf8_lossy(&data);
            if let Some(line) = req.lines().find(|l| l.starts_with("Call-ID:")) {
                assert_eq!(m.call_id(), line["Call-ID:".len()..].trim(), "{name}");
            }
        }
        if *want == Some(420) {
            let m = answer(&mut agent(), &data).unwrap();
            assert!(m
                .header("Unsupported")
                .unwrap()
                .contains("nothingSupportsThis"));
        }
    }
    // The RFC 5118 requests are all answerable.
    for n in VALID_5118 {
        let mut ua = agent();
        let data = load("rfc5118", n);
        let got = answer_raw(&mut ua, &data);
        assert!(got.is_some() || !data.starts_with(b"OPTIONS"), "{n}");
    }
}

#[test]
fn nothing_panics_and_the_agent_keeps_answering() {
    let mut ua = agent();
    for (_, data) in all_files() {
        myturn_sip::fuzzing::receive(&data);
        ua.handle_datagram(Instant::now(), "192.0.2.1:5060".parse().unwrap(), &data);
        // Every prefix and a few corruptions, too.
        for cut in (0..data.len()).step_by(7) {
            myturn_sip::fuzzing::receive(&data[..cut]);
        }
        let mut flipped = data.clone();
        for i in (0..flipped.len()).step_by(13) {
            flipped[i] ^= 0x20;
        }
        myturn_sip::fuzzing::receive(&flipped);
        myturn_sip::fuzzing::stream(&data);
        myturn_sip::fuzzing::stream(&flipped);
    }
    // The whole corpus as one stream, with keep-alives between messages.
    let mut stream = Vec::new();
    for (_, data) in all_files() {
        stream.extend_from_slice(&data);
        stream.extend_from_slice(b"\r\n\r\n");
    }
    myturn_sip::fuzzing::stream(&stream);
    while ua.poll_transmit().is_some() {}
    let options = "OPTIONS sip:user@192.0.2.200 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKafter\r\n\
                   From: <sip:x@192.0.2.1>;tag=1\r\nTo: <sip:user@192.0.2.200>\r\nCall-ID: after\r\nCSeq: 1 OPTIONS\r\n\
                   Content-Length: 0\r\n\r\n";
    assert_eq!(
        answer(&mut ua, options.as_bytes()).unwrap().status(),
        Some(200)
    );
    assert!(ua.stats().rejected >= 15, "{:?}", ua.stats());
    assert!(ua.stats().dropped >= 2, "{:?}", ua.stats());
}

#[test]
fn oversized_datagrams_are_refused() {
    let mut big =
        b"OPTIONS sip:u@h SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKbig\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', msg::DEFAULT_MAX_SIZE));
    let e = msg::parse(&big).unwrap_err();
    assert!(matches!(e.error, ParseError::TooLarge { .. }));
    let mut ua = agent();
    assert!(answer(&mut ua, &big).is_none());
    assert_eq!(ua.stats().dropped, 1);
}
