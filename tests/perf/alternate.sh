#!/usr/bin/env bash
# Runs one benchmark for two builds alternately, back to back (A, B, A, B,
# …), so that a shared machine's load swings fall on both alike; logs the
# load average and the command's own CPU time with every run.
#
#   tests/perf/alternate.sh RUNS LOG DIR_A DIR_B -- COMMAND [ARGS...]
#
# DIR_A and DIR_B are directories of prebuilt binaries (e.g. the release
# myturn-server and myturn-load of two commits, and copies of their bench
# executables). In COMMAND and ARGS, @BIN@ stands for the run's directory,
# and MYTURN_BIN_DIR is set to it (tests/perf/lib.sh honours it). Each run
# is appended to LOG under a line "=== run N LABEL load: …", LABEL being
# the directory's basename. Example, from the repository root:
#
#   tests/perf/alternate.sh 8 /tmp/ws.log /tmp/bin/base /tmp/bin/head -- \
#     tests/perf/websockets.sh 10000 500
set -euo pipefail
runs=$1 log=$2 a=$3 b=$4
shift 4
[ "${1:-}" = "--" ] && shift
for i in $(seq "$runs"); do
  for dir in "$a" "$b"; do
    cmd=("${@//@BIN@/$dir}")
    {
      echo "=== run $i $(basename "$dir") load: $(cut -d' ' -f1-3 /proc/loadavg) at $(date +%T)"
      MYTURN_BIN_DIR=$dir /usr/bin/time -f "command CPU: user %U s, system %S s, wall %e s" \
        "${cmd[@]}" 2>&1 || echo "FAILED: exit $?"
    } >>"$log"
    tail -n 1 "$log" >&2
  done
done
