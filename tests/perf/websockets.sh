#!/usr/bin/env bash
# Event-stream benchmark: N concurrent WebSocket users against a release
# myturn-server (moderated admission, rate limits off) on loopback, from a
# second process. Reports memory per idle stream, push vs 1 s polling
# pairing latency (same run), and lobby fan-out. Figures go into
# docs/performance.md.
#
#   tests/perf/websockets.sh [USERS] [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/../.."
users=${1:-10000}
pairs=${2:-500}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release -q -p myturn-server -p myturn-load
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MYTURN_ADMIN_TOKEN="bench-admin-token-$(date +%s%N)"
MYTURN_LOG=warn target/release/myturn-server --listen "127.0.0.1:$port" --pbx none \
  --admission moderated --rate-limits off --lease 600 --max-users 100000 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done
target/release/myturn-load ws --server "http://127.0.0.1:$port" --users "$users" --pairs "$pairs" \
  --server-pid "$server" "${@:3}"
