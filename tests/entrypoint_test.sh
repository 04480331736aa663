#!/usr/bin/env bash
# The container entrypoints, run as they are (no container engine needed): a
# coordinator and two workers configured only by the environment, with CURVE
# keys laid out as the containers mount them, write the tree a local `run`
# writes. A missing setting is refused with what to set.
# Usage: entrypoint_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
containers="$(cd "$here/../containers" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
manifest="$testdata/manifest.json"
export IMGSWEEP_BIN="$imgsweep"

limit "$imgsweep" --quiet run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$manifest" --out "$work/ref" --db "$work/ref.db" >/dev/null
check "the undisturbed run wrote a tree" [ -d "$work/ref/map-json/profiles" ]

# Secrets as mounted: the coordinator's folder, and each worker's key file.
mkdir -p "$work/coordinator-keys/workers" "$work/worker-keys"
"$imgsweep" keys generate --out "$work/coordinator-keys/coordinator" >/dev/null
"$imgsweep" keys generate --out "$work/worker-keys/worker" >/dev/null
mv "$work/worker-keys/worker.pub" "$work/coordinator-keys/workers/"

run env -u IMGSWEEP_MANIFEST "$containers/entrypoint-coordinator.sh"
check "the coordinator's entrypoint names what is missing ($err)" \
  has "$err" "set IMGSWEEP_MANIFEST to the manifest.json"
run env IMGSWEEP_MANIFEST="$manifest" "$containers/entrypoint-coordinator.sh"
check "and what to sweep ($err)" has "$err" "set IMGSWEEP_VERSIONS or IMGSWEEP_BINARIES"
check "both exit 2 ($rc)" [ "$rc" -eq 2 ]
run "$containers/entrypoint-worker.sh"
check "the worker's entrypoint names what is missing ($err)" \
  has "$err" "set IMGSWEEP_CONNECT to the coordinator, tcp://HOST:PORT"

export IMGSWEEP_LISTEN='tcp://127.0.0.1:*' IMGSWEEP_MANIFEST="$manifest" IMGSWEEP_OUT="$work/tree" \
  IMGSWEEP_DB="$work/db" IMGSWEEP_VERSIONS="$(ls "$binaries/x86_64" | sort -V | paste -sd,)" \
  IMGSWEEP_KEYS="$work/coordinator-keys"
coordinator_program="$containers/entrypoint-coordinator.sh" start_coordinator
check "the coordinator's entrypoint listens ($endpoint)" has "$endpoint" "tcp://127.0.0.1:"
check "with CURVE, from the mounted keys" grep -q "CURVE on; 1 worker keys allowed" "$work/coord.err"
export IMGSWEEP_BINARIES="$binaries" IMGSWEEP_TESTDATA="$testdata" IMGSWEEP_SLOTS=1 \
  IMGSWEEP_KEY="$work/worker-keys/worker.key" \
  IMGSWEEP_COORDINATOR_KEY="$work/coordinator-keys/coordinator.pub"
for w in ci-1 ci-2; do
  worker_program="$containers/entrypoint-worker.sh" start_worker "$w"
  declare "pid_${w/-/_}=$!"
done
wait "$coord_pid"; rc=$?
check "the sweep completes (rc $rc; $(tail -2 "$work/coord.err"))" [ "$rc" -eq 0 ]
wait "$pid_ci_1"; rc1=$?
wait "$pid_ci_2"; rc2=$?
check "both workers exit 0 ($rc1, $rc2)" [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ]
check "both ran cells" grep -q "ci-1 ran" "$work/coord.out" && grep -q "ci-2 ran" "$work/coord.out"
check "the tree is a local run's" diff -r "$work/ref" "$work/tree"
finish entrypoint_test
