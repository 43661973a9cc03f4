#!/bin/sh
# A private CA and a server certificate for localhost/127.0.0.1 signed by
# it (ECDSA P-256, valid 2 days), for tests and benchmarks:
#   tests/tls/make-ca.sh DIR   ->  DIR/ca.pem DIR/cert.pem DIR/key.pem
set -e
cd "$1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days 2 -subj "/CN=myTurn test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout key.pem -out req.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out cert.pem -days 2 -extfile ext.cnf 2>/dev/null
