#!/usr/bin/env bash
# Build the offline Debian base image the tests (and air-gapped users) build every bottle FROM.
#
# debootstrap makes a minimal bookworm rootfs with the packages the tests need, `docker import` turns it
# into an image under a fixed tag. When that tag already exists nothing is done, so a second run costs
# one `docker image inspect`. Set CLAUDE_BOTTLE_BASE_REBUILD=1 to force a rebuild.
#
# usage: scripts/base-image.sh [TAG]      (default: claude-bottle/base:bookworm)
set -euo pipefail

tag="${1:-${CLAUDE_BOTTLE_BASE_IMAGE:-claude-bottle/base:bookworm}}"
suite="${CLAUDE_BOTTLE_BASE_SUITE:-bookworm}"
# What the tests' scripted agents and the sidecar images use: a shell, python for probes, TLS roots,
# git for the gate, procps for /proc readers (mitmproxy fails to configure inside debootstrap; the egress-proxy image installs it with apt).
packages="ca-certificates,python3,curl,git,procps,iproute2,netcat-openbsd"

if [ "${CLAUDE_BOTTLE_BASE_REBUILD:-0}" != 1 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi

command -v debootstrap >/dev/null || {
  echo "error: debootstrap is not installed" >&2
  echo "hint: apt-get install -y debootstrap" >&2
  exit 1
}

work="$(mktemp -d /tmp/claude-bottle-rootfs.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "debootstrap $suite into $work (packages: $packages)"
debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "error: debootstrap failed (log above)" >&2
  exit 1
}
# Keep the image small: package caches and lists are not needed at run time.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*

tar -C "$work/rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  - "$tag" >/dev/null
echo "built base image $tag"
