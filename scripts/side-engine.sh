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

work="$(mktemp -d /tmp/claude-bottle-side-engine.XXXXXX)"
sock="$work/docker.sock"
bridge="cbside$$"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    # Containers of an aborted command first, then the engine itself.
    DOCKER_HOST="unix://$sock" docker ps -aq 2>/dev/null | xargs -r env DOCKER_HOST="unix://$sock" docker rm -f >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  ip link delete "$bridge" 2>/dev/null || true
  umount -R "$work/data" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip link add name "$bridge" type bridge
ip addr add 172.31.250.1/24 dev "$bridge"
ip link set "$bridge" up
echo '{}' >"$work/daemon.json"
dockerd --config-file "$work/daemon.json" --data-root "$work/data" --exec-root "$work/exec" \
  --pidfile "$work/docker.pid" -H "unix://$sock" --storage-driver "$driver" \
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
