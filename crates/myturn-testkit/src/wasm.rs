//! The browser core (`myturn-web`) built for Node.js, for the tests and
//! benchmarks that run the WebAssembly module outside a browser: the
//! toolchain check and the build.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::skip;

/// The wasm-bindgen the workspace builds with (`Cargo.toml`'s
/// `wasm-bindgen = "=…"`): the CLI must be this version.
pub const BINDGEN: &str = "0.2.130";

/// Whether the wasm32 target, wasm-bindgen at [`BINDGEN`] and Node.js are
/// here (SKIPPED, or a failure under CI, when not).
pub fn toolchain() -> bool {
    let bindgen = BINDGEN;
    let Ok(targets) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        skip::missing("rustup");
        return false;
    };
    if !String::from_utf8_lossy(&targets.stdout).contains("wasm32-unknown-unknown") {
        skip::missing(
            "the wasm32-unknown-unknown target (rustup target add wasm32-unknown-unknown)",
        );
        return false;
    }
    if !skip::all_installed(&["node", "wasm-bindgen"]) {
        return false;
    }
    let Ok(v) = Command::new("wasm-bindgen").arg("--version").output() else {
        return false;
    };
    let v = String::from_utf8_lossy(&v.stdout).to_string();
    if !v.contains(bindgen) {
        skip::missing(&format!("wasm-bindgen {bindgen} (found {})", v.trim()));
        return false;
    }
    true
}

/// Builds `myturn-web` of the workspace at `workspace` (release, in
/// `target/wasm-interop`: the outer `cargo test` may hold the workspace's
/// target directory) and its Node.js glue into `out`; the glue's path.
pub fn build_node_module(workspace: &Path, out: &Path) -> PathBuf {
    let target = workspace.join("target/wasm-interop");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "-q",
            "-p",
            "myturn-web",
            "--target",
            "wasm32-unknown-unknown",
            "--release",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the wasm build failed");
    let wasm = target.join("wasm32-unknown-unknown/release/myturn_web.wasm");
    let bound = Command::new("wasm-bindgen")
        .args(["--target", "nodejs", "--out-dir"])
        .arg(out)
        .arg(&wasm)
        .status()
        .expect("wasm-bindgen runs");
    assert!(bound.success(), "wasm-bindgen failed");
    out.join("myturn_web.js")
}
