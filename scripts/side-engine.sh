#!/usr/bin/env bash
# Run a command against a throw-away second Docker engine with another storage driver (or gVisor).
#
# What a build step costs depends on the engine's storage driver: fuse-overlayfs diffs every
# committed layer by walking the whole file system (seconds for a one-file change), overlay2 tars
# the layer's own folder (tens of milliseconds). To measure the launcher on both on one machine,
# this starts a second dockerd (its own data root, exec root, socket and bridge; no iptables
# rules of its own, so the host's engine and its networks are untouched), copies the project's
# local images into it, runs the command with DOCKER_HOST pointing at it, and removes everything
# again.
#
# Its networks take their /24s from SIDE_ENGINE_POOL (default 10.213.0.0/16). Where the host's
# FORWARD policy drops bridged traffic (the host's dockerd sets DROP, and br_netfilter sends bridged
# frames through it), containers of the side engine would not reach each other, not even on one
# network: one rule at the top of DOCKER-USER accepts traffic from that pool to that pool, and is
# deleted on exit.
#
# Needs root and a kernel with overlayfs. Images that need the internet to build cannot be built
# in the side engine (it has no NAT): the copied ones are what the tests and benchmarks use.
#
# --runsc registers gVisor's runsc (Debian's `runsc` package) as runtime `runsc`, the way an operator
# does on their own engine: `runsc install --config_file <its daemon.json> -- --host-uds=open`.
# --host-uds=open lets the sandbox connect to the Unix sockets bind-mounted from the host (the
# relay's, supervise's, the git gate's); without it every connect fails. SIDE_ENGINE_RUNSC_ARGS adds
# more runsc flags (space-separated, e.g. "--platform=kvm" where /dev/kvm exists; the default
# platform is ptrace). Debian bookworm's runsc (0.0~20221219) on a 6.x kernel needs
# SIDE_ENGINE_RUNSC_ARGS=--network=none, or it refuses every container ("cannot run with network
# enabled in root network namespace"; docs/gvisor.md). The host's engine is never reconfigured.
# With CLAUDE_BOTTLE_E2E_RUNTIME=runsc the end-to-end tests run every bottle under runsc.
#
# usage: scripts/side-engine.sh [-d DRIVER] [--runsc] COMMAND [ARGS...]     (default driver: overlay2)
# e.g.   scripts/side-engine.sh cargo bench -p claude-bottle-e2e --bench remediation
#        CLAUDE_BOTTLE_E2E_RUNTIME=runsc scripts/side-engine.sh --runsc cargo test -p claude-bottle-e2e
set -euo pipefail

driver=overlay2
runsc=""
while [ $# -gt 0 ]; do
  case "$1" in
    -d) driver="$2"; shift 2 ;;
    --runsc) runsc=1; shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || {
  echo "usage: $0 [-d DRIVER] [--runsc] COMMAND [ARGS...]" >&2
  exit 2
}
if [ -n "$runsc" ] && ! command -v runsc >/dev/null; then
  echo "error: --runsc needs gVisor's runsc on PATH" >&2
  echo "hint: install it (Debian: apt-get install runsc)" >&2
  exit 1
fi
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

pool="${SIDE_ENGINE_POOL:-10.213.0.0/16}"
rule=(DOCKER-USER -s "$pool" -d "$pool" -m comment --comment "claude-bottle side engine $$" -j ACCEPT)
work="$(mktemp -d /tmp/claude-bottle-side-engine.XXXXXX)"
sock="$work/docker.sock"
bridge="cbside$$"
pid=""
forward=""
cleanup() {
  if [ -n "$pid" ]; then
    # What an aborted command left (containers, then their networks), then the engine itself.
    local side=(env DOCKER_HOST="unix://$sock")
    "${side[@]}" docker ps -aq 2>/dev/null | xargs -r "${side[@]}" docker rm -f >/dev/null 2>&1 || true
    "${side[@]}" docker network prune -f >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    # Shims (and runsc's sandbox and gofer under them) that outlived the engine: a container that
    # failed to start under runsc leaves its shim behind. Only this engine's, by its exec root.
    for p in $(pgrep -f -- "$work/exec/"); do
      kill -KILL "$p" 2>/dev/null || true
    done
  fi
  ip link delete "$bridge" 2>/dev/null || true
  [ -z "$forward" ] || iptables -D "${rule[@]}" 2>/dev/null || true
  # Mounts an engine killed hard leaves under its data and exec roots, deepest first.
  awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

if iptables -S DOCKER-USER >/dev/null 2>&1; then
  iptables -I "${rule[@]:0:1}" 1 "${rule[@]:1}"
  forward=1
fi
ip link add name "$bridge" type bridge
ip addr add "${subnet}.1/24" dev "$bridge"
ip link set "$bridge" up
echo '{}' >"$work/daemon.json"
if [ -n "$runsc" ]; then
  read -r -a extra <<<"${SIDE_ENGINE_RUNSC_ARGS:-}"
  runsc install --config_file "$work/daemon.json" -- --host-uds=open "${extra[@]}" >/dev/null
fi
# Its own containerd namespaces: should it join a system containerd, it still shares nothing
# with the host's engine.
dockerd --config-file "$work/daemon.json" --data-root "$work/data" --exec-root "$work/exec" \
  --pidfile "$work/docker.pid" -H "unix://$sock" --storage-driver "$driver" \
  --containerd-namespace claude-bottle-side --containerd-plugins-namespace claude-bottle-side-plugins \
  -b "$bridge" --default-address-pool "base=$pool,size=24" --iptables=false --ip-masq=false >"$work/dockerd.log" 2>&1 &
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
echo "side engine up: storage driver $(DOCKER_HOST="unix://$sock" docker info -f '{{.Driver}}'), runtimes $(DOCKER_HOST="unix://$sock" docker info -f '{{range $k, $v := .Runtimes}}{{$k}} {{end}}'), socket $sock"

# SIDE_ENGINE_IMAGES names a `docker save` archive to load instead (repeated runs then read nothing
# from the host's engine), or is `none` to start empty; SIDE_ENGINE_HOST_LOCK a file held with flock(1) while the host's engine is
# read, where several users share that engine and take turns on it.
copy_images() {
  mapfile -t images < <(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^claude-bottle/' | grep -v ':<none>$' | grep -v '^claude-bottle/e2e-')
  if [ ${#images[@]} -gt 0 ]; then
    echo "copying ${#images[@]} image(s) from the host's engine"
    docker save "${images[@]}" | DOCKER_HOST="unix://$sock" docker load >/dev/null
  fi
}
if [ "${SIDE_ENGINE_IMAGES:-}" = none ]; then
  :
elif [ -n "${SIDE_ENGINE_IMAGES:-}" ]; then
  echo "loading images from $SIDE_ENGINE_IMAGES"
  DOCKER_HOST="unix://$sock" docker load -i "$SIDE_ENGINE_IMAGES" >/dev/null
elif [ -n "${SIDE_ENGINE_HOST_LOCK:-}" ]; then
  exec 9>"$SIDE_ENGINE_HOST_LOCK"
  flock 9
  copy_images
  flock -u 9
  exec 9>&-
else
  copy_images
fi

DOCKER_HOST="unix://$sock" "$@"
