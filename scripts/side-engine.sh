#!/usr/bin/env bash
# Run a command against a throw-away second Docker engine with another storage driver.
#
# What a build step costs depends on the engine's storage driver: fuse-overlayfs diffs every
# committed layer by walking the whole file system (seconds for a one-file change), overlay2 tars
# the layer's own folder (tens of milliseconds). To measure the launcher on both on one machine,
# this starts a second dockerd (its own data root, exec root, socket and bridge; no iptables
# rules, so the host's engine and its networks are untouched), copies the project's local images
# into it, runs the command with DOCKER_HOST pointing at it, and removes everything again.
#
# Needs root and a kernel with overlayfs. Images that need the internet to build cannot be built
# in the side engine (it has no NAT): the copied ones are what the tests and benchmarks use.
#
# usage: scripts/side-engine.sh [-d DRIVER] COMMAND [ARGS...]     (default driver: overlay2)
# e.g.   scripts/side-engine.sh cargo bench -p claude-bottle-e2e --bench remediation
set -euo pipefail

driver=overlay2
if [ "${1:-}" = "-d" ]; then
  driver="$2"
  shift 2
fi
[ $# -gt 0 ] || {
  echo "usage: $0 [-d DRIVER] COMMAND [ARGS...]" >&2
  exit 2
}
[ "$(id -u)" = 0 ] || {
  echo "error: starting a second dockerd needs root" >&2
  exit 1
}
docker info >/dev/null 2>&1 || {
  echo "error: the host's Docker engine is not reachable (its images are copied from it)" >&2
  exit 1
}

# The side engine's default bridge; SIDE_ENGINE_SUBNET picks another /24 when this one is taken.
subnet="${SIDE_ENGINE_SUBNET:-172.31.250}"
if ip -4 route | grep -q "^${subnet}\."; then
  echo "error: ${subnet}.0/24 is already routed on this host" >&2
  echo "hint: set SIDE_ENGINE_SUBNET to a free /24 prefix, e.g. SIDE_ENGINE_SUBNET=10.213.7" >&2
  exit 1
fi

work="$(mktemp -d /tmp/claude-bottle-side-engine.XXXXXX)"
sock="$work/docker.sock"
bridge="cbside$$"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    # What an aborted command left (containers, then their networks), then the engine itself.
    local side=(env DOCKER_HOST="unix://$sock")
    "${side[@]}" docker ps -aq 2>/dev/null | xargs -r "${side[@]}" docker rm -f >/dev/null 2>&1 || true
    "${side[@]}" docker network prune -f >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  ip link delete "$bridge" 2>/dev/null || true
  # Mounts an engine killed hard leaves under its data and exec roots, deepest first.
  awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

ip link add name "$bridge" type bridge
ip addr add "${subnet}.1/24" dev "$bridge"
ip link set "$bridge" up
echo '{}' >"$work/daemon.json"
# Its own containerd namespaces: should it join a system containerd, it still shares nothing
# with the host's engine.
dockerd --config-file "$work/daemon.json" --data-root "$work/data" --exec-root "$work/exec" \
  --pidfile "$work/docker.pid" -H "unix://$sock" --storage-driver "$driver" \
  --containerd-namespace claude-bottle-side --containerd-plugins-namespace claude-bottle-side-plugins \
  -b "$bridge" --iptables=false --ip-masq=false >"$work/dockerd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || {
    tail -n 20 "$work/dockerd.log" >&2
    echo "error: the side engine did not start (log above)" >&2
    exit 1
  }
  sleep 0.2
done
echo "side engine up: storage driver $(DOCKER_HOST="unix://$sock" docker info -f '{{.Driver}}'), socket $sock"

mapfile -t images < <(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^claude-bottle/' | grep -v ':<none>$' | grep -v '^claude-bottle/e2e-')
if [ ${#images[@]} -gt 0 ]; then
  echo "copying ${#images[@]} image(s) from the host's engine"
  docker save "${images[@]}" | DOCKER_HOST="unix://$sock" docker load >/dev/null
fi

DOCKER_HOST="unix://$sock" "$@"
