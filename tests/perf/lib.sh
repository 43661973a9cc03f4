# A free loopback TCP port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
build_release() { cargo build --release -q -p myturn-server -p myturn-load; }

# Shared by the perf scripts: build release binaries and start a
# myturn-server on a free loopback port. Sets $port and $server (its pid)
# and stops it on exit. $bin is the directory the binaries come from:
# target/release, built here, unless MYTURN_BIN_DIR names a directory of
# prebuilt ones (e.g. another commit's, for tests/perf/alternate.sh).
#   start_server [myturn-server flags...]
bin=${MYTURN_BIN_DIR:-target/release}
start_server() {
  [ -n "${MYTURN_BIN_DIR:-}" ] || build_release
  port=$(free_port)
  MYTURN_LOG=warn "$bin/myturn-server" --listen "127.0.0.1:$port" --pbx none "$@" &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "myturn-server did not come up" >&2
  return 1
}
