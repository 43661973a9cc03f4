//! Module dependencies point one way in every library crate of the
//! workspace: the layering check (`myturn_testkit::layering`, whose `//!`
//! says the rules) over each `crates/*/src/lib.rs`. On a cycle the test
//! fails and prints it, with one path per hop and where it is written.

use std::path::Path;

use myturn_testkit::layering;

#[test]
fn module_dependencies_point_one_way_in_every_library_crate() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the crates directory");
    let workspace = format!("{}/", crates.parent().unwrap_or(&crates).display());
    let mut roots: Vec<_> = std::fs::read_dir(&crates)
        .expect("the crates directory")
        .filter_map(|e| e.ok().map(|e| e.path().join("src/lib.rs")))
        .filter(|p| p.is_file())
        .collect();
    roots.sort();
    assert!(roots.len() >= 5, "library crates found: {roots:?}");
    let mut report = String::new();
    for root in &roots {
        let name = root
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match layering::check(root) {
            Ok(cycles) => {
                for c in cycles {
                    report.push_str(&format!("{name}: {c}"));
                }
            }
            Err(e) => report.push_str(&format!("{name}: cannot read: {e}\n")),
        }
    }
    let report = report.replace(&workspace, "");
    assert!(
        report.is_empty(),
        "module dependency cycles (each must be broken so that dependencies point one way):\n{report}"
    );
}
