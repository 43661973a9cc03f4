//! The real-peer tests of each crate are its `interop` test target, and
//! `cargo pure` (`.cargo/config.toml`) runs every other test target by the
//! glob `[!i]*`: so no other integration-test target may have a name
//! starting with `i`.

use std::path::Path;

#[test]
fn only_the_interop_targets_start_with_i() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrong = Vec::new();
    for krate in std::fs::read_dir(&crates).expect("the crates directory") {
        let tests = krate.expect("a crate").path().join("tests");
        let Ok(entries) = std::fs::read_dir(&tests) else {
            continue;
        };
        for e in entries {
            let p = e.expect("a tests entry").path();
            let target = if p.extension().is_some_and(|x| x == "rs") {
                p.file_stem().map(|s| s.to_string_lossy().into_owned())
            } else if p.join("main.rs").is_file() {
                p.file_name().map(|s| s.to_string_lossy().into_owned())
            } else {
                None
            };
            if let Some(t) = target.filter(|t| t.starts_with('i') && t != "interop") {
                wrong.push(format!("{}: {t}", p.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "test targets named like interop ones (rename them, or make them part of `interop`): {wrong:?}"
    );
}
