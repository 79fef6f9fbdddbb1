#!/usr/bin/env bash
# Install claude-bottle: the launcher and the static binaries it mounts into agents and builds its
# sidecars from, side by side in one folder (where the launcher looks for them first).
#
# usage: scripts/install.sh [PREFIX]        (default: ~/.local; binaries go to PREFIX/bin)
#
# Needs Rust (cargo, with the x86_64-unknown-linux-gnu target) and gcc. Everything else is built by
# the first `claude-bottle start`, with progress: the agent image (Claude Code from the Python
# package index), the egress-proxy, relay and supervise images. pipelock's image is pulled when the
# engine lacks it (on an air-gapped machine, `docker load` it first: see the README).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-$HOME/.local}"
bin="$prefix/bin"

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed" >&2
  echo "hint: install Rust (rustup), then run $0 again" >&2
  exit 1
fi

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
# The release profile, linked statically: the same files run on the host and in FROM scratch images.
PROFILE=release "$root/scripts/build-static.sh" "$build"

mkdir -p "$bin"
for name in claude-bottle claude-bottle-shim claude-bottle-supervise claude-bottle-git-gate; do
  install -m 0755 "$build/$name" "$bin/$name.tmp"
  mv -f "$bin/$name.tmp" "$bin/$name"
  echo "installed $bin/$name"
done

if ! docker info >/dev/null 2>&1; then
  echo "warning: the Docker engine is not reachable (docker info failed); start it before 'claude-bottle start'" >&2
fi
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "note: $bin is not on your PATH; add it, or run $bin/claude-bottle" ;;
esac
echo "next: export ANTHROPIC_API_KEY=…; claude-bottle start"
