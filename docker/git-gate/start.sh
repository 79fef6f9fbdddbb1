#!/bin/sh
# The git gate's entrypoint: the operator's extra roots (upstream_ca) join the image's bundle for
# the gate's git (GIT_SSL_CAINFO, inherited by the hooks' forwarding pushes), then the gate.
set -eu
conf=/etc/claude-bottle/git-gate
if [ -s "$conf/upstream-ca.pem" ]; then
    bundle=/tmp/claude-bottle-ca-bundle.pem
    cat /etc/ssl/certs/ca-certificates.crt "$conf/upstream-ca.pem" > "$bundle"
    export GIT_SSL_CAINFO="$bundle"
fi
exec /usr/local/bin/claude-bottle-git-gate serve \
    --config "$conf/gate.toml" \
    --socket /run/claude-bottle/git/gate.sock \
    --root /srv/git \
    --audit /var/log/claude-bottle/git-audit.jsonl
