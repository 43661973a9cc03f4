#!/usr/bin/env bash
# The two .debs, tested on this machine (run by .ci/run; needs root or
# sudo): `myturn-server` (the server, which must not depend on the sound
# libraries) and `myturn` (the terminal client). Build them with
# cargo-deb, install the server's, check the unit with
# `systemd-analyze verify`, start the installed server as its unit would
# (its settings file, its environment file, an unprivileged user, ports of
# its own, a notify socket), ask it for /healthz and wait for its READY=1,
# then remove and purge it; install the client's and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
cargo build --release --quiet -p myturn-server -p myturn-client
deb=$(cargo deb -p myturn-server --no-build --quiet -o target/debian/ | tail -n 1)
client_deb=$(cargo deb -p myturn-client --no-build --quiet -o target/debian/ | tail -n 1)
echo "built $deb and $client_deb"
# The server's package needs no sound library; the client's does.
depends=$(dpkg-deb -f "$deb" Depends)
if echo "$depends" | grep -Eq 'libasound|libopus|libwebrtc'; then
  echo "the server package depends on sound libraries: $depends" >&2
  exit 1
fi
dpkg-deb -f "$client_deb" Depends | grep -q libasound2 || { echo "the client package lacks libasound2" >&2; exit 1; }
echo "server package depends on: $depends"
$SUDO dpkg -i "$deb" >/dev/null
trap '$SUDO dpkg --purge myturn-server myturn >/dev/null 2>&1 || true' EXIT
test -x /usr/bin/myturn-server
test ! -e /usr/bin/myturn || { echo "the server package ships the client" >&2; exit 1; }
# And the binary links none (this machine has them, for the client: so
# ask the binary, not dpkg).
if ldd /usr/bin/myturn-server | grep -Eq 'libasound|libopus|libwebrtc'; then
  echo "myturn-server links a sound library:" >&2
  ldd /usr/bin/myturn-server >&2
  exit 1
fi
for f in /lib/systemd/system/myturn-server.service /etc/myturn/myturn-server.env \
         /etc/myturn/myturn-server.toml \
         /usr/share/myturn/asterisk-conf/sip.conf /usr/share/myturn/asterisk-conf/pjsip.conf \
         /usr/share/myturn/grafana/myturn-server.json /usr/share/doc/myturn-server/operations.md; do
  test -f "$f" || { echo "missing from the package: $f" >&2; exit 1; }
done
[ "$(stat -c %a /etc/myturn/myturn-server.env)" = 600 ] || { echo "the env file must be 0600" >&2; exit 1; }
systemd-analyze verify /lib/systemd/system/myturn-server.service
unit=/lib/systemd/system/myturn-server.service
for want in Type=notify NotifyAccess=main WatchdogSec= "ExecStart=/usr/bin/myturn-server --config /etc/myturn/myturn-server.toml"; do
  grep -q "^$want" "$unit" || { echo "the unit lacks $want" >&2; exit 1; }
done
echo "systemd-analyze verify: ok"
[ "$(stat -c %a /etc/myturn/myturn-server.toml)" = 644 ] || { echo "the settings file must be 0644 (the service user reads it)" >&2; exit 1; }
# Ports nothing listens on (bash's /dev/tcp: a refused connect is a free port).
free_port() {
  local p
  while :; do
    p=$(shuf -i 30000-32000 -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
http=$(free_port)
sip=$(free_port)
# systemd's notify socket, stood in for by a few lines of Python (when
# there is one): the server must say READY=1 there.
notify_dir=$(mktemp -d)
chmod 755 "$notify_dir"
notify_log="$notify_dir/received"
notify_pid=""
if command -v python3 >/dev/null; then
  python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "ab", 0) as f:
    while True:
        f.write(s.recv(4096) + b"\n")
' "$notify_dir/notify" "$notify_log" </dev/null >/dev/null 2>&1 &
  notify_pid=$!
  trap 'kill $notify_pid 2>/dev/null || true; rm -rf "$notify_dir"; $SUDO dpkg --purge myturn-server myturn >/dev/null 2>&1 || true' EXIT
  for _ in $(seq 50); do [ -S "$notify_dir/notify" ] && break; sleep 0.1; done
fi
# As the unit runs it: the environment file, the settings file, then an
# unprivileged user.
(
  set -a
  . /etc/myturn/myturn-server.env
  set +a
  export MYTURN_LISTEN="127.0.0.1:$http" MYTURN_SIP_LISTEN="127.0.0.1:$sip" MYTURN_MEDIA_PORTS=29000-29099
  [ -z "$notify_pid" ] || export NOTIFY_SOCKET="$notify_dir/notify"
  runas=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  [ -z "$SUDO" ] || runas=(sudo --preserve-env "${runas[@]}")
  exec "${runas[@]}" /usr/bin/myturn-server --config /etc/myturn/myturn-server.toml
) >/tmp/myturn-deb-server.log 2>&1 &
server=$!
trap 'kill $server ${notify_pid:-} 2>/dev/null || true; rm -rf "$notify_dir"; $SUDO dpkg --purge myturn-server myturn >/dev/null 2>&1 || true' EXIT
ok=""
for _ in $(seq 100); do
  if body=$(curl -fs "http://127.0.0.1:$http/healthz"); then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || { echo "the installed server did not answer; its log:" >&2; cat /tmp/myturn-deb-server.log >&2; exit 1; }
echo "$body" | grep -q '"status":"ok"' || { echo "unexpected /healthz: $body" >&2; exit 1; }
echo "installed server answers /healthz: $body"
if [ -n "$notify_pid" ]; then
  for _ in $(seq 100); do grep -q '^READY=1' "$notify_log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^READY=1' "$notify_log" || { echo "no READY=1 on the notify socket; the log:" >&2; cat /tmp/myturn-deb-server.log >&2; exit 1; }
  echo "installed server said READY=1"
fi
kill "$server"
wait "$server" 2>/dev/null || true
$SUDO dpkg -r myturn-server >/dev/null
test ! -e /usr/bin/myturn-server
test -f /etc/myturn/myturn-server.env   # conffiles outlive remove
test -f /etc/myturn/myturn-server.toml
$SUDO dpkg --purge myturn-server >/dev/null
test ! -e /etc/myturn/myturn-server.env
test ! -e /etc/myturn/myturn-server.toml
echo "deb: install, verify, run, remove, purge: ok"
# The client's package: installs (its sound libraries are here: .ci/run
# installs their -dev packages), runs, and removes cleanly.
$SUDO dpkg -i "$client_deb" >/dev/null
/usr/bin/myturn --version >/dev/null
$SUDO dpkg --purge myturn >/dev/null
test ! -e /usr/bin/myturn
echo "client deb: install, run, purge: ok"
