#!/bin/sh
# Starts mitmdump for the egress-proxy sidecar; see the Dockerfile for the contract.
set -eu
conf=${EGRESS_PROXY_CONFIG_DIR:-/etc/claude-bottle/egress-proxy}
upstream=${EGRESS_PROXY_UPSTREAM:?set EGRESS_PROXY_UPSTREAM, e.g. http://pipelock:8888}
port=${EGRESS_PROXY_PORT:-8080}
roots=/etc/ssl/certs/ca-certificates.crt
here=$(dirname "$0")

# Early requests wait: until the upstream (pipelock) accepts, this proxy does not listen either, so
# the relay in front of it holds the agent's first connections (its warm-up window) instead of
# mitmproxy answering them 502. Bounded by the chain's readiness budget; past it, start anyway and
# let the launcher's readiness check name the hop that is down.
wait_s=${EGRESS_PROXY_UPSTREAM_WAIT_S:-30}
python3 - "$upstream" "$wait_s" <<'PY'
import socket, sys, time, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        socket.create_connection((url.hostname, url.port or 80), timeout=1).close()
        break
    except OSError as e:
        if time.monotonic() >= deadline:
            print("egress-proxy: upstream %s not reachable after %ss: %s" % (sys.argv[1], sys.argv[2], e), file=sys.stderr)
            break
        time.sleep(0.05)
PY

umask 077
work=$(mktemp -d /tmp/egress-proxy.XXXXXX)
# mitmproxy writes next to its CA (dhparam), and the mount is read-only: use a private copy.
cp "$conf/mitmproxy-ca.pem" "$work/mitmproxy-ca.pem"
# ssl_verify_upstream_trusted_ca replaces the default roots: pipelock's CA for intercepted hosts,
# the public roots for hosts pipelock passes through.
cat "$roots" "$conf/upstream-ca.pem" > "$work/upstream-trust.pem"

exec mitmdump \
    --mode "upstream:$upstream" \
    --listen-host 0.0.0.0 --listen-port "$port" \
    --set confdir="$work" \
    --set ssl_verify_upstream_trusted_ca="$work/upstream-trust.pem" \
    --set flow_detail=0 \
    -s "$here/addon.py" \
    --set routes_file="${CLAUDE_BOTTLE_ROUTES:-$conf/routes.json}"
