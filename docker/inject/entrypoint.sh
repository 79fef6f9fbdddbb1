#!/bin/sh
# claude-bottle agent entrypoint, mounted read-only into every agent container by the launcher
# (at /usr/local/lib/claude-bottle/entrypoint.sh, in front of the image's own ENTRYPOINT).
#
# The agent container has no network at all (mode none). When the launcher mounts the proxy socket
# it sets CLAUDE_BOTTLE_PROXY_SOCKET; this script then starts the shim's relay so that
# HTTP(S)_PROXY=http://127.0.0.1:3128 reaches the proxy sidecar through that socket (and, with
# CLAUDE_BOTTLE_GIT_SOCKET, a second one on 127.0.0.1:3130 to the git gate), waits until the
# relays listen, and replaces itself with the agent's command (`exec`: signals and exit code stay
# the agent's). POSIX sh only: a bottle's own image may have nothing but busybox.
set -eu

shim=/usr/local/bin/claude-bottle-shim

if [ "$#" -eq 0 ]; then
    echo "claude-bottle: failed to start the agent: no command given" >&2
    exit 64
fi

# start_relay SOCKET PORT WHAT: the shim's relay from 127.0.0.1:PORT to the Unix socket SOCKET, in
# the background; returns once it listens.
start_relay() {
    # The relay shares the agent's terminal: keep it to warnings and errors.
    CLAUDE_BOTTLE_LOG="${CLAUDE_BOTTLE_RELAY_LOG:-warn}" \
        "$shim" relay --listen "tcp:127.0.0.1:$2" --connect "unix:$1" &
    relay=$!

    # A listener shows in /proc/net/tcp as local address 0100007F:<port in hex>, state 0A.
    want=$(printf '0100007F:%04X' "$2")
    tries=0
    until listening "$want"; do
        if ! kill -0 "$relay" 2>/dev/null; then
            echo "claude-bottle: failed to start the $3 relay to $1 (its error is above)" >&2
            exit 70
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 200 ]; then
            echo "claude-bottle: failed to start the $3 relay: 127.0.0.1:$2 is not listening after 10s" >&2
            exit 70
        fi
        sleep 0.05 2>/dev/null || sleep 1
    done
}

listening() {
    while read -r _ local _ state _; do
        if [ "$local" = "$1" ] && [ "$state" = 0A ]; then
            return 0
        fi
    done </proc/net/tcp
    return 1
}

if [ -n "${CLAUDE_BOTTLE_PROXY_SOCKET:-}" ]; then
    start_relay "$CLAUDE_BOTTLE_PROXY_SOCKET" "${CLAUDE_BOTTLE_PROXY_PORT:-3128}" proxy
fi

# The git gate: the agent's git configuration points each upstream URL at this port.
if [ -n "${CLAUDE_BOTTLE_GIT_SOCKET:-}" ]; then
    start_relay "$CLAUDE_BOTTLE_GIT_SOCKET" "${CLAUDE_BOTTLE_GIT_PORT:-3130}" "git gate"
fi

# A successor started ahead of its swap waits here, before it touches the home, until the
# launcher has carried the old agent's files in and creates the gate file (in a folder the agent
# has read-only).
if [ -n "${CLAUDE_BOTTLE_GATE:-}" ]; then
    "$shim" hold "$CLAUDE_BOTTLE_GATE" || exit 70
fi

# The agent file's prompt (its Markdown body), as Claude Code's user memory file. Copied, not
# mounted: the agent owns its ~/.claude and may edit the file. An existing one is kept (a resumed
# session restores its home).
prompt=/usr/local/lib/claude-bottle/agent-prompt.md
if [ -s "$prompt" ] && [ -n "${HOME:-}" ] && [ ! -e "$HOME/.claude/CLAUDE.md" ]; then
    mkdir -p "$HOME/.claude" 2>/dev/null && cp "$prompt" "$HOME/.claude/CLAUDE.md" 2>/dev/null || true
fi

# Claude Code, when the image has it: no first-run screen (onboarding, the placeholder key, the
# folder trust, the bypass warning), merged into its own state files (see the shim's claude-setup).
if [ -n "${HOME:-}" ] && command -v claude >/dev/null 2>&1; then
    "$shim" claude-setup || echo "claude-bottle: Claude Code may ask its first-run questions (the error is above)" >&2
fi

# With supervise on, the shim daemon holds the connection to supervise for the agent's tools
# (buffering while supervise restarts); the CLI falls back to supervise directly without it.
if [ -n "${CLAUDE_BOTTLE_SUPERVISE_SOCKET:-}" ]; then
    CLAUDE_BOTTLE_LOG="${CLAUDE_BOTTLE_SHIM_LOG:-warn}" "$shim" daemon </dev/null >/dev/null 2>&1 &
fi

exec "$@"
