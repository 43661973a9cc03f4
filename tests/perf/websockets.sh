#!/usr/bin/env bash
# Event-stream benchmark: N concurrent WebSocket users against a release
# myturn-server (moderated admission, rate limits off) on loopback, from a
# second process. Reports memory per idle stream, push vs 1 s polling
# pairing latency (same run), lobby fan-out and the server's CPU. Figures go into
# docs/performance.md.
#
#   tests/perf/websockets.sh [USERS] [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/../.."
users=${1:-10000}
pairs=${2:-500}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export MYTURN_ADMIN_TOKEN="bench-admin-token-$(date +%s%N)"
. tests/perf/lib.sh
start_server --admission moderated --rate-limits off --lease 600 --max-users 100000
"$bin/myturn-load" ws --server "http://127.0.0.1:$port" --users "$users" --pairs "$pairs" \
  --server-pid "$server" "${@:3}"
# The server's CPU over the whole run (start-up, 10,000 stream opens,
# pairings, fan-out), user + system, from /proc: less load-sensitive than
# the latencies.
awk '{printf "server CPU: %.2f s (user %.2f, system %.2f)\n", ($14+$15)/100, $14/100, $15/100}' "/proc/$server/stat"
