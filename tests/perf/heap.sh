#!/usr/bin/env bash
# Live heap per idle event stream: like websockets.sh, but instead of RSS
# (which counts whatever free heap earlier phases left resident, so it
# shifts with the allocator's history) it asks glibc for the bytes in use
# (malloc_stats, called through gdb, a pause of about a second) once
# every user is registered and again once every stream is open and idle.
# A stripped server binary keeps gdb's pause short.
#
#   tests/perf/heap.sh [USERS]      (MYTURN_BIN_DIR: prebuilt binaries)
set -euo pipefail
cd "$(dirname "$0")/../.."
users=${1:-10000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export MYTURN_ADMIN_TOKEN="bench-admin-token-$(date +%s%N)"
# Pings every 20 s instead of every second, so that gdb's pause (longer on
# a loaded machine) does not make the server drop streams as dead; what a
# stream holds does not depend on it.
export MYTURN_STREAM_GRACE=${MYTURN_STREAM_GRACE:-60}
. tests/perf/lib.sh
errlog=$(mktemp)
exec 3>&2 2>"$errlog" # the server's stderr: malloc_stats writes there
start_server --admission moderated --rate-limits off --lease 600 --max-users 100000
exec 2>&3
metric() { curl -fs "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# Waits (at most 5 minutes) until the server's metric $1 reads $2.
await_metric() {
  for _ in $(seq 6000); do
    [ "$(metric "$1")" = "$2" ] && return 0
    kill -0 "$load" 2>/dev/null || { echo "myturn-load ended before $1 reached $2" >&2; return 1; }
    sleep 0.05
  done
  echo "timed out waiting for $1 = $2" >&2
  return 1
}
in_use() {
  gdb -nx -batch -p "$server" -ex 'call (void)malloc_stats()' >/dev/null 2>&1
  sleep 0.2
  grep 'in use bytes' "$errlog" | tail -n 1 | awk '{print $NF}'
}
"$bin/myturn-load" ws --server "http://127.0.0.1:$port" --users "$users" --pairs 1 \
  --server-pid "$server" >"${MYTURN_LOAD_LOG:-/dev/null}" 2>&1 &
load=$!
trap 'kill $server $load 2>/dev/null || true' EXIT
await_metric myturn_registrations_total "$users"
before=$(in_use)
await_metric myturn_websockets "$users"
sleep 1
idle=$(in_use)
kill "$load" 2>/dev/null || true # the rest of its run is not measured here
echo "heap in use: $before B with $users users registered, $idle B with their streams open"
echo "heap per idle stream: $(( (idle - before) / users )) B"
rm -f "$errlog"
