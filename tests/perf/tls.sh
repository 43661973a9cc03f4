#!/usr/bin/env bash
# TLS cost benchmark: the same release myturn-server twice on loopback, one
# plain (HTTP/WS) and one with --tls-cert (HTTPS/WSS, a certificate from a
# CA this script makes with openssl), measured in the same run from a
# second process:
#   1. new connections per second, each one GET /healthz (a full TLS
#      handshake on the TLS server; a bare TCP connection on the plain one);
#   2. server memory per idle event stream (WSS against WS).
# Figures go into docs/performance.md.
#
#   tests/perf/tls.sh [STREAMS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
streams=${1:-2000}
seconds=${2:-5}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export MYTURN_ADMIN_TOKEN="bench-admin-token-$(date +%s%N)"
cargo build --release -q -p myturn-server -p myturn-load
dir=$(mktemp -d)
sh tests/tls/make-ca.sh "$dir"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
plain_port=$(free_port)
tls_port=$(free_port)
common=(--pbx none --admission moderated --rate-limits off --lease 600 --max-users 100000)
MYTURN_LOG=warn target/release/myturn-server --listen "127.0.0.1:$plain_port" "${common[@]}" &
plain=$!
MYTURN_LOG=warn target/release/myturn-server --listen "127.0.0.1:$tls_port" "${common[@]}" \
  --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" &
tls=$!
trap 'kill $plain $tls 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$plain_port/healthz" >/dev/null 2>&1 &&
    curl -fs --cacert "$dir/ca.pem" "https://localhost:$tls_port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done
echo "== new connections per second (one GET /healthz each)"
target/release/myturn-load handshakes --server "http://127.0.0.1:$plain_port" \
  --duration "$seconds" --server-pid "$plain"
target/release/myturn-load handshakes --server "https://localhost:$tls_port" \
  --ca-cert "$dir/ca.pem" --duration "$seconds" --server-pid "$tls"
echo "== memory per idle event stream ($streams streams)"
pairs=$(( (streams - 2) / 4 ))
pairs=$(( pairs > 200 ? 200 : pairs ))
target/release/myturn-load ws --server "http://127.0.0.1:$plain_port" --users "$streams" \
  --pairs "$pairs" --server-pid "$plain"
target/release/myturn-load ws --server "https://localhost:$tls_port" --users "$streams" \
  --pairs "$pairs" --server-pid "$tls" --ca-cert "$dir/ca.pem"
