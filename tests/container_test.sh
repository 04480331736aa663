#!/usr/bin/env bash
# The images as an orchestrator runs them, with podman: scripts/container-images
# builds them from this repo; a coordinator container and two worker containers
# (half a CPU each) sweep the test bed over CURVE on the host's loopback, with the
# keys mounted as Kubernetes mounts a Secret (root-owned, group 10001, 0440,
# behind ..data links) for the coordinator and as a compose bind mount keeps
# them (the host's owner, group 10001, 0640) for the workers. Mid-sweep one
# worker is stopped with SIGTERM: it drains and exits 0. The tree equals a
# direct run's, and every cell ran once. Healthchecks pass while they serve.
# Usage: container_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# The user's cache, where the images' ccache lives between runs (sweep_lib
# gives the test's processes a scratch one).
user_cache="${XDG_CACHE_HOME:-$HOME/.cache}"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo/containers/podman/containers.conf}"
command -v podman >/dev/null || { echo "FAIL: podman is not installed (scripts/setup)"; exit 1; }
suffix="imgsweep-test-$$"
cleanup_containers() { podman rm -f -t 0 "c-$suffix" "w1-$suffix" "w2-$suffix" >/dev/null 2>&1; }
trap 'cleanup_containers; stop_all; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
uid=10001  # the images' user and group
# A check the rest cannot do without: on failure, the test ends here.
need() { local before=$failed; check "$@"; [ "$failed" -eq "$before" ] || { finish container_test; exit 1; }; }

mapfile -t images < <(XDG_CACHE_HOME="$user_cache" "$repo/scripts/container-images")
need "the images build (${images[*]})" [ "${#images[@]}" -eq 3 ]
worker_image=${images[1]} coordinator_image=${images[2]}

run limit podman run --rm --network none --entrypoint /srv/qemu-img-binaries/x86_64/5.2.0/qemu-img \
  -v "$binaries:/srv/qemu-img-binaries:ro" "$worker_image" --version
check "the worker image runs a release older than itself ($(cat "$work/out"))" \
  has "$(cat "$work/out")" "qemu-img version 5.2.0"

# The reference: a direct run on the host.
limit "$imgsweep" --quiet run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$testdata/manifest.json" --out "$work/ref" --db "$work/ref.db" >/dev/null
need "the direct run wrote a tree" [ -f "$work/ref/map-json/version-map.json" ]

# Keys, made on the host.
mkdir -p "$work/keys"
for k in coordinator w1 w2; do "$imgsweep" keys generate --out "$work/keys/$k" >/dev/null; done
# The coordinator's, as Kubernetes mounts a Secret with defaultMode 0440 and
# fsGroup 10001: root's files, the group's to read, behind ..data links.
secret="$work/k8s-secret"
mkdir -p "$secret/..2026_12_02_00_00_00.000000001/workers"
cp "$work/keys/coordinator.key" "$work/keys/coordinator.pub" "$secret/..2026_12_02_00_00_00.000000001/"
cp "$work/keys/w1.pub" "$work/keys/w2.pub" "$secret/..2026_12_02_00_00_00.000000001/workers/"
ln -s ..2026_12_02_00_00_00.000000001 "$secret/..data"
for f in coordinator.key coordinator.pub workers; do ln -s "..data/$f" "$secret/$f"; done
find "$secret/..data/" -type f -exec chown "0:$uid" {} + -exec chmod 0440 {} +
# The workers', as a compose bind mount keeps the host's files: the host's
# owner, with the group 10001 allowed to read.
for k in w1 w2 coordinator; do
  chgrp "$uid" "$work/keys/$k".*; chmod 0640 "$work/keys/$k".*
done
mkdir -p "$work/state" && chown "$uid:$uid" "$work/state"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
versions=$(ls "$binaries/x86_64" | sort -V | paste -sd, -)
# No healthcheck timers (they need systemd): the test runs each check itself.
podman run -d --name "c-$suffix" --network host --health-interval=disable \
  -e IMGSWEEP_LISTEN="tcp://127.0.0.1:$port" -e IMGSWEEP_VERSIONS="$versions" \
  -e IMGSWEEP_KEYS=/run/secrets/imgsweep -e IMGSWEEP_METRICS=127.0.0.1:0 \
  -v "$work/state:/var/lib/imgsweep" -v "$testdata:/srv/testdata:ro" \
  -v "$secret:/run/secrets/imgsweep:ro" "$coordinator_image" >/dev/null
check "the coordinator container starts" [ "$(podman inspect -f '{{.State.Running}}' "c-$suffix")" = true ]
podman logs -f "c-$suffix" >"$work/coord.log" 2>&1 &
pids+=("$!")
wait_for_line "$work/coord.log" "listening on tcp://127.0.0.1:$port" 60
need "the coordinator loads its Kubernetes-mounted key and listens ($said; $(tail -2 "$work/coord.log"))" [ -n "$said" ]
for w in w1 w2; do
  # Half a CPU each: one slot, and a sweep slow enough to stop a worker in.
  podman run -d --name "$w-$suffix" --network host --cpus 0.5 --health-interval=disable \
    -e IMGSWEEP_CONNECT="tcp://127.0.0.1:$port" -e IMGSWEEP_NAME="$w" -e IMGSWEEP_HOST="$w" \
    -e IMGSWEEP_KEY=/run/secrets/worker-key -e IMGSWEEP_COORDINATOR_KEY=/run/secrets/coordinator-pub \
    -v "$binaries:/srv/qemu-img-binaries:ro" -v "$testdata:/srv/testdata:ro" \
    -v "$work/keys/$w.key:/run/secrets/worker-key:ro" \
    -v "$work/keys/coordinator.pub:/run/secrets/coordinator-pub:ro" "$worker_image" >/dev/null
  podman logs -f "$w-$suffix" >"$work/$w.log" 2>&1 &
  pids+=("$!")
done
wait_for_line "$work/w2.log" "joined sweep" 120
need "w2 loads its bind-mounted key and joins ($said; $(tail -2 "$work/w2.log"))" [ -n "$said" ]
# Mid-sweep, as an orchestrator stops a pod: SIGTERM, then a grace period.
limit podman stop --time 120 "w2-$suffix" >/dev/null 2>&1 &
stopping=$!
check "a worker in a half-CPU container takes 1 slot, and says why" \
  grep -q "1 cpus for cells, decided by the cgroup" "$work/w2.log"
run limit podman healthcheck run "c-$suffix"
check "the coordinator's healthcheck passes while it serves ($rc: $(cat "$work/out"))" [ "$rc" -eq 0 ]
timeout 60 sh -c "until podman exec w1-$suffix test -f /tmp/imgsweep-health; do sleep 0.2; done"
run limit podman healthcheck run "w1-$suffix"
check "a welcomed worker's healthcheck passes ($rc)" [ "$rc" -eq 0 ]

wait "$stopping"
w2_exit=$(podman inspect -f '{{.State.ExitCode}}' "w2-$suffix")
check "w2, stopped with SIGTERM mid-sweep, exits 0 ($w2_exit; $(tail -2 "$work/w2.log"))" [ "$w2_exit" = 0 ]
check "w2 drained: no more cells, the held ones handed in" \
  grep -q "drained: every cell it took is done and acknowledged" "$work/w2.log"
run limit podman wait "c-$suffix"
check "the coordinator finishes the sweep with w1 and exits 0 ($(cat "$work/out"); $(tail -2 "$work/coord.log"))" \
  [ "$(cat "$work/out")" = 0 ]
run limit podman wait "w1-$suffix"
check "w1 is told the sweep is over and exits 0 ($(cat "$work/out"))" [ "$(cat "$work/out")" = 0 ]
check "the tree equals the direct run's" diff -r "$work/ref" "$work/state/expected-outputs"
limit "$imgsweep" status --db "$work/state/imgsweep.db" --cells >"$work/status"
cells=$(grep -c '^map-' "$work/status")
twice=$(grep '^map-' "$work/status" | grep -v ' done .* attempts=1$' | head -3)
check "every cell done, on its first attempt: none lost, none run twice (${twice:-all $cells})" \
  [ -z "$twice" ] && [ "$cells" -eq "$(cell_count)" ]
finish container_test
