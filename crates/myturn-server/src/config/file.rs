//! `--config FILE`: every flag as a TOML key (issue #27).
//!
//! The file is flat: each long flag `--foo-bar` is the top-level key
//! `foo_bar` (the flag's name with `_` for `-`, as in its `MYTURN_FOO_BAR`
//! variable); there are no sections. A value is a TOML string, integer or
//! boolean (`true`/`false` for the switches such as `wideband`); a flag
//! that takes a list (`trusted_proxy`, `sip_digest`) takes an array or
//! one comma-separated string.
//!
//! The file's values become the flags' defaults, so clap's own order
//! decides: the command line beats the environment, which beats the file,
//! which beats the built-in defaults. Keys are derived from the clap
//! [`Command`]: a new flag is a new key with nothing to add here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};
use toml::{Spanned, Value};

/// Flags that have no key: clap's own, and `--config` itself.
const NOT_KEYS: [&str; 3] = ["help", "version", "config"];

/// Why the `--config` file was refused. Each names the file, and the line
/// and the key where it can.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("--config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML.
    #[error("--config {}{}: not TOML: {message}", path.display(), at(*line))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where, 1-based.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A key that is no flag.
    #[error(
        "--config {}{}: unknown key `{key}`{hint} (every key is a flag of \
         `myturn-server --help`, written `foo_bar` for `--foo-bar`, at the top level)",
        path.display(), at(Some(*line))
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// Where, 1-based.
        line: usize,
        /// The key as written.
        key: String,
        /// `: did you mean …?`, or nothing.
        hint: String,
    },
    /// A value its flag does not take.
    #[error("--config {}{}: `{key}`: {message}", path.display(), at(Some(*line)))]
    BadValue {
        /// The file.
        path: PathBuf,
        /// Where, 1-based.
        line: usize,
        /// The key.
        key: String,
        /// What was wrong, and what the flag takes.
        message: String,
    },
}

fn at(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// The file key of a flag: `--foo-bar` is `foo_bar`.
pub fn key_of(long: &str) -> String {
    long.replace('-', "_")
}

/// Every flag that has a file key, with that key, in `--help` order.
pub fn keys(cmd: &Command) -> Vec<(String, &Arg)> {
    cmd.get_arguments()
        .filter(|a| !NOT_KEYS.contains(&a.get_id().as_str()))
        .filter_map(|a| a.get_long().map(|l| (key_of(l), a)))
        .collect()
}

/// `cmd` with the file at `path` as its flags' defaults.
pub fn apply(cmd: Command, path: &Path) -> Result<Command, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    apply_text(cmd, path, &text)
}

/// `cmd` with the TOML `text` (read from `path`) as its flags' defaults.
pub fn apply_text(mut cmd: Command, path: &Path, text: &str) -> Result<Command, FileError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table: BTreeMap<Spanned<String>, Spanned<Value>> =
        toml::from_str(text).map_err(|e| FileError::Syntax {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(s.start)),
            message: e.message().trim().to_owned(),
        })?;
    let known: BTreeMap<String, String> = keys(&cmd)
        .into_iter()
        .map(|(k, a)| (k, a.get_id().to_string()))
        .collect();
    let mut defaults = Vec::new();
    for (key, value) in &table {
        let line = line_of(key.span().start);
        let name = key.get_ref();
        let Some(id) = known.get(name) else {
            return Err(FileError::UnknownKey {
                path: path.to_owned(),
                line,
                key: name.clone(),
                hint: hint(name, value.get_ref(), known.keys()),
            });
        };
        let bad = |message: String| FileError::BadValue {
            path: path.to_owned(),
            line,
            key: name.clone(),
            message,
        };
        let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id.as_str()) else {
            continue;
        };
        let values = strings(arg, value.get_ref()).map_err(bad)?;
        if !is_switch(arg) {
            for v in &values {
                check(arg, v).map_err(bad)?;
            }
        }
        defaults.push((id.clone(), values));
    }
    for (id, values) in defaults {
        cmd = cmd.mut_arg(id, |a| {
            // Hidden in --help: a default there is the built-in one (and a
            // file may hold a secret). Switches show no default anyway.
            let hide = !is_switch(&a);
            a.default_values(values).hide_default_value(hide)
        });
    }
    Ok(cmd)
}

/// A hint for an unknown key: the flag it was probably meant to be.
fn hint<'a>(key: &str, value: &Value, known: impl Iterator<Item = &'a String>) -> String {
    if matches!(value, Value::Table(_)) {
        return ": the file has no sections; write each key at the top level".into();
    }
    let wanted = key_of(key.trim_start_matches('-')).to_ascii_lowercase();
    let known: Vec<&String> = known.collect();
    if let Some(k) = known.iter().find(|k| **k == &wanted) {
        return format!(": did you mean `{k}`?");
    }
    known
        .iter()
        .map(|k| (distance(k, &wanted), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(": did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Levenshtein distance: the typos a hint catches.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// Is `arg` an on/off switch (`--wideband`), rather than taking a value?
fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// The value(s) a TOML value stands for, as the command line would give
/// them; or what the flag takes instead.
fn strings(arg: &Arg, value: &Value) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        return match value {
            Value::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err(format!(
                "a switch takes true or false, not {} {other}",
                kind(other)
            )),
        };
    }
    let many = matches!(arg.get_action(), ArgAction::Append);
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("takes a string or a number, not {}", kind(other))),
    };
    match value {
        Value::Array(items) if many => items.iter().map(one).collect(),
        Value::Array(_) => Err("takes one value, not an array".into()),
        Value::String(s) if many => Ok(match arg.get_value_delimiter() {
            Some(d) => s.split(d).map(|p| p.trim().to_owned()).collect(),
            None => vec![s.clone()],
        }),
        v => one(v).map(|s| vec![s]),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "the string",
        Value::Integer(_) => "the integer",
        Value::Float(_) => "the float",
        Value::Boolean(_) => "the boolean",
        Value::Datetime(_) => "the date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// Parses `v` as `arg` would on the command line: the message says why not.
fn check(arg: &Arg, v: &str) -> Result<(), String> {
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    // The flag alone in a command of its own: its parser, and nothing
    // that depends on the other flags.
    let alone = Command::new("myturn-server")
        .no_binary_name(true)
        .arg(arg.clone().required(false));
    let Err(e) = alone.try_get_matches_from([format!("--{long}={v}")]) else {
        return Ok(());
    };
    if let Some(why) = std::error::Error::source(&e) {
        let why = why.to_string();
        return Err(if why.contains(v) {
            why
        } else {
            format!("`{v}`: {why}")
        });
    }
    if e.kind() == ErrorKind::InvalidValue {
        if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
            return Err(format!("`{v}` is not one of {}", valid.join(", ")));
        }
    }
    // clap's own words, less its `error: ` and `For more information`.
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    Err(first.trim_start_matches("error: ").to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;
    use std::io::Write as _;

    use clap::CommandFactory as _;

    use super::*;
    use crate::config::{Config, LoadError, PbxKind};

    const EXAMPLE: &str = include_str!("../../../../deploy/myturn-server.toml");

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn load(f: &tempfile::NamedTempFile, flags: &[&str]) -> Result<Config, LoadError> {
        let path = f.path().to_str().unwrap();
        Config::load_from(["myturn-server", "--config", path].iter().chain(flags))
    }

    fn refusal(text: &str) -> (String, tempfile::NamedTempFile) {
        let f = file(text);
        match load(&f, &[]) {
            Err(LoadError::File(e)) => (e.to_string(), f),
            other => panic!("{text:?} was not refused as a file: {other:?}"),
        }
    }

    /// The example with every `#key = value` line uncommented.
    fn example_uncommented() -> String {
        EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_files_values_are_used() {
        let f = file(
            "# a comment\nlease = 40\npbx = \"none\"\nwideband = true\n\
             trusted_proxy = [\"10.0.0.1\", \"10.0.0.0/8\"]\nsip_digest = \"md5\"\n",
        );
        let cfg = load(&f, &[]).unwrap();
        assert_eq!(cfg.lease, 40);
        assert_eq!(cfg.pbx, PbxKind::None);
        assert!(cfg.wideband);
        assert_eq!(cfg.trusted_proxy.len(), 2);
        assert_eq!(cfg.sip_digest, vec![crate::config::DigestAlgorithm::Md5]);
        assert_eq!(cfg.config.as_deref(), Some(f.path()));
        // Keys the file leaves out keep their defaults.
        assert_eq!(cfg.token_ttl, Config::defaults().token_ttl);
        // `--config=FILE` is the same.
        let path = format!("--config={}", f.path().display());
        assert_eq!(
            Config::load_from(["myturn-server", &path]).unwrap().lease,
            40
        );
    }

    #[test]
    fn a_flag_beats_the_file() {
        let f = file("lease = 40\ntrusted_proxy = [\"10.0.0.1\", \"10.0.0.2\"]\nwideband = true\n");
        let cfg = load(&f, &["--lease", "50", "--trusted-proxy", "192.0.2.1"]).unwrap();
        assert_eq!(cfg.lease, 50);
        // A list on the command line replaces the file's, not added to it.
        assert_eq!(cfg.trusted_proxy, vec!["192.0.2.1".parse().unwrap()]);
        // The flag before --config wins as well.
        let path = f.path().to_str().unwrap();
        let cfg = Config::load_from(["myturn-server", "--lease", "7", "--config", path]).unwrap();
        assert_eq!(cfg.lease, 7);
        // A bad flag is still clap's error, the file notwithstanding.
        assert!(matches!(
            load(&f, &["--lease", "x"]),
            Err(LoadError::Args(_))
        ));
    }

    #[test]
    fn a_file_value_satisfies_what_a_flag_needs() {
        // --tls-cert on the command line, its key in the file.
        let f = file("tls_key = \"/k.pem\"\n");
        let cfg = load(&f, &["--tls-cert", "/c.pem"]).unwrap();
        assert_eq!(cfg.tls_key.as_deref(), Some(Path::new("/k.pem")));
        // One without the other is refused, wherever it came from.
        let err = load(&file(""), &["--tls-cert", "/c.pem"]).unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named_with_the_file_and_line() {
        let (e, f) = refusal("lease = 40\n\nmedia_timout = 5\n");
        let path = f.path().display().to_string();
        assert!(e.contains(&format!("{path}:3")), "{e}");
        assert!(e.contains("unknown key `media_timout`"), "{e}");
        assert!(e.contains("did you mean `media_timeout`?"), "{e}");
        // The flag's spelling, a section, `config` itself: all unknown.
        let (e, _) = refusal("tls-cert = \"x\"\n");
        assert!(e.contains("`tls-cert`: did you mean `tls_cert`?"), "{e}");
        let (e, _) = refusal("[builtin]\nsip_listen = \"127.0.0.1:5060\"\n");
        assert!(e.contains("`builtin`") && e.contains("no sections"), "{e}");
        let (e, _) = refusal("config = \"other.toml\"\n");
        assert!(e.contains("unknown key `config`"), "{e}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named() {
        for (text, key, why) in [
            ("lease = \"soon\"", "lease", "invalid digit"),
            ("lease = 1", "lease", "not in 2..=86400"),
            ("wideband = \"yes\"", "wideband", "true or false"),
            ("listen = [\"127.0.0.1:1\"]", "listen", "not an array"),
            ("listen = 8080", "listen", "8080"),
            (
                "log_format = \"xml\"",
                "log_format",
                "not one of human, json",
            ),
            ("media_ports = \"1-2\"", "media_ports", "at or above 1024"),
            ("sip_digest = [\"md5\", \"sha-1\"]", "sip_digest", "sha-1"),
            ("pbx = { kind = \"none\" }", "pbx", "not a table"),
            ("media_timeout = 1.5", "media_timeout", "not the float"),
        ] {
            let (e, f) = refusal(&format!("# first\n{text}\n"));
            let at = format!("{}:2: `{key}`", f.path().display());
            assert!(e.contains(&at) && e.contains(why), "{text}: {e}");
        }
        let (e, _) = refusal("lease = \n");
        assert!(e.contains("not TOML") && e.contains(":1"), "{e}");
        let err = Config::load_from(["myturn-server", "--config", "/nonexistent/my.toml"]);
        let e = err.unwrap_err().to_string();
        assert!(e.contains("/nonexistent/my.toml"), "{e}");
    }

    #[test]
    fn every_flag_has_a_key_and_the_example_shows_each() {
        let cmd = Config::command();
        let flags: BTreeSet<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !["help", "version", "config"].contains(l))
            .map(key_of)
            .collect();
        let keys_: BTreeSet<String> = keys(&cmd).into_iter().map(|(k, _)| k).collect();
        assert_eq!(flags, keys_);
        assert!(flags.contains("sip_listen") && flags.contains("admin_token_file"));
        // The example names every key once, and each example value is one
        // its flag takes.
        let text = example_uncommented();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let shown: BTreeSet<String> = table.keys().cloned().collect();
        assert_eq!(
            shown, flags,
            "deploy/myturn-server.toml and the flags differ"
        );
        let applied = apply_text(Config::command(), Path::new("example.toml"), &text).unwrap();
        // Each key set its own flag.
        for (key, arg) in keys(&applied) {
            let want = strings(arg, &table[&key]).unwrap();
            let got: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            assert_eq!(got, want, "{key}");
        }
    }

    #[test]
    fn the_documented_example_loads() {
        let doc = include_str!("../../../../docs/operations.md");
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a ```toml block in docs/operations.md");
        let cfg = load(&file(block), &[]).unwrap();
        assert_eq!(cfg.interest_wait, 5);
        assert_eq!(cfg.trusted_proxy.len(), 2);
    }

    #[test]
    fn the_example_as_shipped_is_the_defaults() {
        let f = file(EXAMPLE);
        let mut cfg = load(&f, &[]).unwrap();
        cfg.config = None;
        assert_eq!(format!("{cfg:?}"), format!("{:?}", Config::defaults()));
    }

    #[test]
    fn backend_flags_are_under_their_backends_heading() {
        use crate::config::{ASTERISK, BUILTIN, KAMAILIO, REDIS};
        // A flag whose help starts "With <backend>" is under that
        // backend's heading, and a flag under a heading says so first.
        let rules = [
            ("With `--pbx builtin`", BUILTIN),
            ("With `--media-relay", BUILTIN),
            ("With Asterisk", ASTERISK),
            ("With `--reload", ASTERISK),
            ("With `--pbx kamailio`", KAMAILIO),
            ("With `--state redis", REDIS),
        ];
        let cmd = Config::command();
        let mut seen = BTreeSet::new();
        for arg in cmd.get_arguments() {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let want = rules
                .iter()
                .find(|(prefix, _)| help.starts_with(prefix))
                .map(|(_, h)| *h);
            assert_eq!(
                arg.get_help_heading(),
                want,
                "--{:?}: {help}",
                arg.get_long()
            );
            seen.extend(want);
        }
        assert_eq!(seen.len(), 4, "a heading with no flags: {seen:?}");
    }
}
