#!/usr/bin/env bash
# Shared state (#24) and interests (#23) benchmark. Release builds, all on
# loopback, every server and redis-server started (and stopped) here:
#   1. per use case (register, ready+pair, refresh, status, me, logout):
#      ops/s and CPU per op from /proc/PID/stat for (a) one node in memory,
#      (b) one node + Redis (AOF on), (c) three nodes + one Redis, the load
#      spread over the three; alternating a, b, c, a, b, c, … RUNS times;
#      once more (b) with appendonly no;
#   2. Redis commands and reads processed (≈ round trips) per op, from
#      INFO commandstats / INFO stats;
#   3. Redis used_memory per registered user and per waiting user with
#      three interests (the backdrop of the interest run);
#   4. push p50/p99 at STREAMS WebSocket streams: one memory node against
#      three nodes on one Redis, alternating RUNS times;
#   5. interests at 10,000 waiting users, tags out of 1,000: the pairing
#      phases (plain and shared tag alternating, next to the waiting pool)
#      and push p50/p99 (shared-tag pairs and plain pairs interleaved), on
#      a memory node and on one node + Redis.
# Every run's JSON goes into $OUT (default: a temp dir, printed).
# PARTS="ops ws interests" (the default) picks what runs;
# INTEREST_KINDS="memory redis1" (the default) where the interest part runs.
#
#   tests/perf/shared-state.sh [USERS] [RUNS] [STREAMS] [POOL]
set -euo pipefail
cd "$(dirname "$0")/../.."
users=${1:-2000}
runs=${2:-3}
streams=${3:-10000}
pool=${4:-10000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export MYTURN_ADMIN_TOKEN="bench-admin-token-$(date +%s%N)"
. tests/perf/lib.sh
build_release
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
work=$(mktemp -d)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/jwt.key"
echo >>"$work/jwt.key"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# start_redis yes|no: sets $rport and $rpid.
start_redis() {
  rport=$(free_port)
  local dir
  dir=$(mktemp -d -p "$work")
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir" --appendonly "$1" --save '' \
    --daemonize no --logfile "$dir/log" &
  rpid=$!
  pids+=("$rpid")
  for _ in $(seq 100); do
    redis-cli -p "$rport" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis-server did not come up" >&2
  return 1
}

# start_node NAME [flags...]: appends to $bases / $node_pids.
start_node() {
  local name=$1 p
  shift
  p=$(free_port)
  MYTURN_LOG=warn target/release/myturn-server --listen "127.0.0.1:$p" --pbx none \
    --rate-limits off --lease 600 --max-users 200000 --jwt-key-file "$work/jwt.key" \
    --node-id "$name" "$@" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  curl -fs "http://127.0.0.1:$p/healthz" >/dev/null
  bases+=(--server "http://127.0.0.1:$p")
  node_pids+=("$pid")
  pid_args+=(--pid "$name=$pid")
}

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# setup KIND [server flags...]: memory | redis1 | redis3 | redis1-noaof.
setup() {
  local kind=$1
  shift
  bases=() node_pids=() pid_args=() redis_args=()
  case $kind in
  memory) start_node n1 "$@" ;;
  redis1 | redis1-noaof | redis3)
    if [ "$kind" = redis1-noaof ]; then start_redis no; else start_redis yes; fi
    pid_args+=(--pid "redis=$rpid")
    redis_args=(--redis "127.0.0.1:$rport")
    local n=1
    [ "$kind" = redis3 ] && n=3
    for i in $(seq "$n"); do
      start_node "n$i" --state "redis://127.0.0.1:$rport/0" "$@"
    done
    ;;
  esac
}

ops() { # KIND TAG [ops flags...]
  local kind=$1 tag=$2
  shift 2
  setup "$kind"
  echo "== ops $kind ($tag)"
  target/release/myturn-load ops "${bases[@]}" "${pid_args[@]}" "${redis_args[@]}" \
    --users "$users" "$@" --json >"$out/ops-$kind-$tag.json"
  python3 tests/perf/shared-state-table.py ops "$out/ops-$kind-$tag.json"
  stop_all
}

ws() { # KIND TAG [ws flags...]
  local kind=$1 tag=$2
  shift 2
  setup "$kind" --admission moderated
  local spids=()
  for p in "${node_pids[@]}"; do spids+=(--server-pid "$p"); done
  echo "== ws $kind ($tag)"
  target/release/myturn-load ws "${bases[@]}" "${spids[@]}" --users "$streams" "$@" \
    --json >"$out/ws-$kind-$tag.json"
  python3 tests/perf/shared-state-table.py ws "$out/ws-$kind-$tag.json"
  stop_all
}

parts=" ${PARTS:-ops ws interests} "
has() { [[ $parts == *" $1 "* ]]; }
echo "results in $out"
if has ops; then
  for r in $(seq "$runs"); do
    for kind in memory redis1 redis3; do ops "$kind" "run$r" || echo "== failed"; done
  done
  ops redis1-noaof run1 || echo "== failed"
fi
has ws && for r in $(seq "$runs"); do
  for kind in memory redis3; do ws "$kind" "run$r" --pairs 200 --lobby-lines 5 || echo "== failed"; done
done
has interests && for kind in ${INTEREST_KINDS:-memory redis1}; do
  ops "$kind" interests --interests 1000 --backdrop "$pool" || echo "== failed"
  ws "$kind" interests --pairs 200 --interests 1000 || echo "== failed"
done
python3 tests/perf/shared-state-table.py summary "$out"
