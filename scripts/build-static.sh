#!/usr/bin/env bash
# Build claude-bottle's binaries statically (glibc crt-static) for the FROM scratch sidecar images
# and the agent image's shim, and put them side by side in one folder.
#
# usage: scripts/build-static.sh [OUT_DIR]        (default: target/static)
#
# The launcher finds the binaries through $CLAUDE_BOTTLE_BIN_DIR, `bin_dir` in config.toml, or next
# to itself (`<exe dir>`, `<exe dir>/static`, `<exe dir>/../static`): a dev build in target/debug finds
# this script's default output. Running it again only re-copies what cargo rebuilt.
#
# Environment: CARGO_TARGET_DIR (default: target/), PROFILE (release|dev, default release),
# BINS (default: "claude-bottle-supervise claude-bottle-shim claude-bottle-git-gate claude-bottle"; each binary is the
# package of the same name).
#
# --target is required, not decoration: with an explicit target, cargo applies RUSTFLAGS to the
# target's code only, so proc-macros and build scripts (host code, loaded as shared objects) are not
# built with crt-static, which would break them.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=x86_64-unknown-linux-gnu
profile="${PROFILE:-release}"
out="${1:-$root/target/static}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
read -r -a bins <<<"${BINS:-claude-bottle-supervise claude-bottle-shim claude-bottle-git-gate claude-bottle}"

case "$profile" in
  release) profile_dir=release ;;
  dev) profile_dir=debug ;;
  *) echo "error: PROFILE must be release or dev, not $profile" >&2; exit 2 ;;
esac

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  if [ "$(rustc -vV | sed -n 's/^host: //p')" != "$target" ]; then
    echo "error: the Rust target $target is not installed" >&2
    echo "hint: rustup target add $target" >&2
    exit 1
  fi
fi

cd "$root"
args=()
for bin in "${bins[@]}"; do
  args+=(-p "$bin" --bin "$bin")
done
echo "building ${bins[*]} ($profile, static) for $target"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --profile "$profile" --target "$target" "${args[@]}"

mkdir -p "$out"
for bin in "${bins[@]}"; do
  src="$target_dir/$target/$profile_dir/$bin"
  # A dynamically linked result would fail in FROM scratch with a confusing "no such file".
  if command -v file >/dev/null && ! file -L "$src" | grep -qE 'statically linked|static-pie linked'; then
    echo "error: $src is not statically linked: $(file -L "$src")" >&2
    exit 1
  fi
  if ! cmp -s "$src" "$out/$bin"; then
    install -m 0755 "$src" "$out/$bin.tmp"
    mv -f "$out/$bin.tmp" "$out/$bin"
    echo "  $out/$bin (updated)"
  else
    echo "  $out/$bin (unchanged)"
  fi
done
