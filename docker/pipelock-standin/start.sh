#!/bin/sh
# Starts the pipelock STAND-IN (tests only); see the Dockerfile for the contract.
set -eu
config=${PIPELOCK_CONFIG:-/etc/pipelock/pipelock.yaml}
port=${PIPELOCK_PORT:-8888}
roots=/etc/ssl/certs/ca-certificates.crt
here=$(dirname "$0")
export PIPELOCK_CONFIG="$config"

umask 077
work=$(mktemp -d /tmp/pipelock-standin.XXXXXX)
# tls_interception.ca_cert / ca_key of the generated config (relative to its folder, as pipelock).
python3 - "$config" "$here" > "$work/ca-paths" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[2])
from standin import parse_yaml
path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    tls = (parse_yaml(f.read()) or {}).get("tls_interception") or {}
base = os.path.dirname(path)
for key in ("ca_key", "ca_cert"):
    print(os.path.join(base, tls[key]))
PY
{ read -r key; read -r cert; } < "$work/ca-paths"
# As pipelock: the CA key must be SEC1 PEM (x509.ParseECPrivateKey) and no looser than 0640.
if [ "$(head -n 1 "$key" | tr -d '\r')" != "-----BEGIN EC PRIVATE KEY-----" ]; then
    echo "load TLS CA: parse CA key: x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)" >&2
    exit 1
fi
mode=$(stat -c %a "$key")
if [ $((0$mode & 0137)) -ne 0 ]; then
    echo "load TLS CA: CA key $key has mode $mode; want 0600 or 0640" >&2
    exit 1
fi
cat "$key" "$cert" > "$work/mitmproxy-ca.pem"
# The upstream leg trusts the public roots plus an optional extra bundle (the tests' own CA), and,
# as Go's crypto/x509 in the real pipelock, every file in $SSL_CERT_DIR (the launcher's upstream_ca).
cat "$roots" ${STANDIN_EXTRA_CA:+"$STANDIN_EXTRA_CA"} > "$work/upstream-trust.pem"
if [ -n "${SSL_CERT_DIR:-}" ]; then
    for dir in $(echo "$SSL_CERT_DIR" | tr ':' ' '); do
        for f in "$dir"/*; do
            [ -f "$f" ] && cat "$f" >> "$work/upstream-trust.pem"
        done
    done
fi

exec mitmdump \
    --listen-host 0.0.0.0 --listen-port "$port" \
    --set confdir="$work" \
    --set ssl_verify_upstream_trusted_ca="$work/upstream-trust.pem" \
    --set flow_detail=0 \
    -s "$here/standin.py"
