#!/usr/bin/env bash
# Test certificates for the TLS checks, made at test time: a CA and a server certificate
# signed by it (no key usage restriction, so the verifier also presents it as a client).
#   make-test-certs.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -new -newkey rsa:2048 -nodes -days 30 -subj "/CN=IronCache test CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=ironcache" \
    -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -out server.crt 2>/dev/null
