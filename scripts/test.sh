#!/usr/bin/env bash
# The project's test command: everything the tests need, then the whole workspace's tests.
#
# 1. the offline Debian base image (scripts/base-image.sh; skipped when the tag exists),
# 2. the static shim and supervise binaries the images are built from (scripts/build-static.sh),
# 3. cargo test --workspace (unit, integration, and end-to-end tests against the Docker engine),
#    two tests at a time (several bottles start at the same moment; tests/e2e/many.rs starts four).
#
# Extra arguments go to cargo test, e.g. `scripts/test.sh -p claude-bottle-e2e isolation`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v tmux >/dev/null; then
  echo "error: tmux is not installed (the interactive Claude Code test and the dashboard test drive a terminal with it)" >&2
  echo "hint: apt-get install -y tmux" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "error: the Docker engine is not reachable (docker info failed)" >&2
  echo "hint: start dockerd, or point DOCKER_HOST at a running engine" >&2
  exit 1
fi

scripts/base-image.sh
target_dir="${CARGO_TARGET_DIR:-$root/target}"
# No debug info: the shim is copied into every agent image, 80 MB with it, 10 without.
CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_DEV_STRIP=symbols \
  PROFILE=dev BINS="claude-bottle-supervise claude-bottle-shim claude-bottle-git-gate" scripts/build-static.sh "$target_dir/static"
export CLAUDE_BOTTLE_BIN_DIR="$target_dir/static"
# Two at a time: the machines this runs on have two cores, and most of an end-to-end test is the
# engine's work. Bottles starting at the same moment are fine (docs/egress.md, "Many bottles").
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
# The end-to-end tests run the launcher binary; `cargo test -p claude-bottle-e2e` alone would not
# rebuild it.
cargo build -p claude-bottle --bin claude-bottle
cargo test --workspace "$@"
