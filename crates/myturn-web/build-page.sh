#!/bin/sh
# Builds the browser client's WebAssembly module and its JavaScript glue
# into crates/myturn-server/assets/web/ (or the directory given), where the
# server embeds them: the page at `/` needs nothing built at install time.
# Run it after changing myturn-web, myturn-media or myturn-sip; the test
# `the_committed_page_module_is_current` (myturn-web) fails until you do.
#
#   sh crates/myturn-web/build-page.sh [OUT_DIR]
#
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli at the
# version of the workspace's wasm-bindgen (.ci/run installs both).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/crates/myturn-server/assets/web}
target=${MYTURN_WASM_TARGET_DIR:-$root/target/wasm-page}
mkdir -p "$out"
# Paths are remapped so the module is the same whichever checkout builds it.
RUSTFLAGS="--remap-path-prefix=$root=/myturn --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
  cargo build -q -p myturn-web --target wasm32-unknown-unknown --profile wasm \
  --manifest-path "$root/Cargo.toml" --target-dir "$target"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
  "$target/wasm32-unknown-unknown/wasm/myturn_web.wasm"
