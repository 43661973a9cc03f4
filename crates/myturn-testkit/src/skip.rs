//! The one rule for a test whose real peer (a program, a kernel feature)
//! is missing here: print `SKIPPED: …` and return, unless the run requires
//! the peers (`CI` set, or `MYTURN_REQUIRE_INTEROP=1`), where it fails.

use std::path::Path;
use std::process::{Command, Stdio};

/// True when a test that cannot run here must fail rather than skip:
/// under CI (`CI` set) or with `MYTURN_REQUIRE_INTEROP=1`.
pub fn required() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var("MYTURN_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// Reports that `what` is missing: panics when the peers are
/// [`required`], else prints `SKIPPED: {what}`. Always false, so a test
/// reads `if !ready { return }`.
pub fn missing(what: &str) -> bool {
    assert!(
        !required(),
        "{what}; `bash .ci/run` installs what the interop tests need from Debian's packages"
    );
    eprintln!("SKIPPED: {what} (run `bash .ci/run` to install the interop peers)");
    false
}

/// Whether the program `bin` is on `PATH`; [`missing`] when not.
pub fn installed(bin: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found || missing(&format!("{bin} is not installed"))
}

/// Whether every program in `bins` is installed (the first missing one
/// is reported).
pub fn all_installed(bins: &[&str]) -> bool {
    bins.iter().all(|b| installed(b))
}

/// Whether the file `path` exists; [`missing`] (`what`) when not.
pub fn present(path: &Path, what: &str) -> bool {
    path.exists() || missing(what)
}
