# claude-bottle: sourced by every bash the agent starts (BASH_ENV), interactive or not.
# A command that is not installed is reported to the operator's queue as evidence for a
# capability proposal (quietly; the shim decides whether the name is worth reporting), then bash
# answers as it always does.
command_not_found_handle() {
    if [ -x /usr/local/bin/claude-bottle-shim ] && [ -n "${CLAUDE_BOTTLE_SUPERVISE_SOCKET:-}" ]; then
        /usr/local/bin/claude-bottle-shim report command-not-found "$1" </dev/null >/dev/null 2>&1 || true
    fi
    printf 'bash: %s: command not found\n' "$1" >&2
    return 127
}
