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
. tests/perf/lib.sh
start_server --rate-limits off
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
echo "server RSS before: $(rss) kB"
"$bin/myturn-load" http --server "http://127.0.0.1:$port" --users "$users" --duration "$secs" "${@:3}"
echo "server RSS after: $(rss) kB"
