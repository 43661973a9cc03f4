//! The page's module, as the server embeds it, is what this source
//! builds: `crates/myturn-web/build-page.sh` run again, into a temporary
//! directory, gives the committed `crates/myturn-server/assets/web/`
//! files byte for byte (the build remaps paths and uses one codegen unit,
//! so any checkout gives the same bytes). A change to myturn-web,
//! myturn-media or myturn-sip without running the script fails here.

use std::process::Command;

use crate::node::{wasm_toolchain, workspace};

#[test]
fn the_committed_page_module_is_current() {
    if !wasm_toolchain() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let st = Command::new("sh")
        .arg(workspace().join("crates/myturn-web/build-page.sh"))
        .arg(out.path())
        .env(
            "MYTURN_WASM_TARGET_DIR",
            workspace().join("target/wasm-page"),
        )
        .status()
        .expect("sh runs");
    assert!(st.success(), "build-page.sh failed");
    for file in ["myturn_web.js", "myturn_web_bg.wasm"] {
        let built = std::fs::read(out.path().join(file)).unwrap();
        let committed = std::fs::read(
            workspace()
                .join("crates/myturn-server/assets/web")
                .join(file),
        )
        .unwrap();
        assert!(
            built == committed,
            "{file} is stale ({} bytes built, {} committed): run `sh crates/myturn-web/build-page.sh` and commit the result",
            built.len(),
            committed.len()
        );
    }
}

/// The page's weight budget (issue #28): everything `/` loads, gzipped.
const BUDGET: usize = 400 * 1024;

#[test]
fn the_page_weighs_under_its_budget_gzipped() {
    if !myturn_testkit::skip::installed("gzip") {
        return;
    }
    let dir = workspace().join("crates/myturn-server/assets/web");
    let mut total = 0;
    for file in [
        "index.html",
        "page.js",
        "page.css",
        "worklet.js",
        "myturn_web.js",
        "myturn_web_bg.wasm",
    ] {
        let out = Command::new("gzip")
            .args(["-9", "-c"])
            .arg(dir.join(file))
            .output()
            .expect("gzip runs");
        assert!(out.status.success());
        eprintln!("{file}: {} bytes gzipped", out.stdout.len());
        total += out.stdout.len();
    }
    eprintln!("the page: {total} bytes gzipped (budget {BUDGET})");
    assert!(total <= BUDGET, "the page weighs {total} bytes gzipped");
}
