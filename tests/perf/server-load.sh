#!/usr/bin/env bash
# Latency of myturn-server under concurrent load from a second process.
# Starts a release myturn-server on a free loopback port, runs myturn-load
# against it, stops the server. Figures go into docs/performance.md.
#
#   tests/perf/server-load.sh [USERS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
users=${1:-200}
secs=${2:-10}
cargo build --release -q -p myturn-server -p myturn-load
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MYTURN_LOG=warn target/release/myturn-server --listen "127.0.0.1:$port" --pbx none --rate-limits off &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
echo "server RSS before: $(rss) kB"
target/release/myturn-load http --server "http://127.0.0.1:$port" --users "$users" --duration "$secs" "${@:3}"
echo "server RSS after: $(rss) kB"
