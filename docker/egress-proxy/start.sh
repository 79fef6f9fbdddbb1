#!/bin/sh
# Starts mitmdump for the egress-proxy sidecar; see the Dockerfile for the contract.
set -eu
conf=${EGRESS_PROXY_CONFIG_DIR:-/etc/claude-bottle/egress-proxy}
upstream=${EGRESS_PROXY_UPSTREAM:?set EGRESS_PROXY_UPSTREAM, e.g. http://pipelock:8888}
port=${EGRESS_PROXY_PORT:-8080}
roots=/etc/ssl/certs/ca-certificates.crt
here=$(dirname "$0")

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
