#!/usr/bin/env bash
# The command line as containers and scripts use it: --version; global flags
# after the subcommand; every flag from an IMGSWEEP_* variable, the command
# line winning; one local worker by default, and how run keeps its workers'
# slots to cpus; `status --db --json`; errors as JSON log records under
# --log-format json; the default slots cut by the CPU affinity, and kept to
# its cpus unless --pin-cells says otherwise; a worker's health file.
# Usage: cli_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
cd "$work" || exit 1
versions=$(ls "$binaries/x86_64" | wc -l)

run limit "$imgsweep" --version
check "--version: exit 0 ($rc)" [ "$rc" -eq 0 ]
check "--version: names the program and the protocol ($(cat "$work/out"))" \
  grep -Eq '^imgsweep [0-9]+\.[0-9]+\.[0-9]+ \(protocol [0-9]+\)$' "$work/out"

two_image_manifest "$work/m.json"
run limit "$imgsweep" run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$work/m.json" --db "$work/db" --out "$work/tree" --quiet --log-format json
check "run ... --quiet --log-format json: exit 0 ($rc: $err)" [ "$rc" -eq 0 ]
check "run ... --quiet: no info lines ($err)" lacks "$err" '"level":"info"'
check "run starts one local worker by default, which runs every cell ($(cat "$work/out"))" \
  grep -qx "imgsweep:   local-1 ran $((versions * 4)) cells" "$work/out"
check "... and no second one" lacks "$(cat "$work/out")" "local-2"

# run's local workers: one slot per cpu, each worker its own share of them;
# where they cannot be kept to cpus, two cells per cpu that may move.
if [ "$(nproc)" -ge 2 ]; then
  run limit taskset -c 0,1 "$imgsweep" run --binaries "$binaries" --testdata "$testdata" \
    --manifest "$work/m.json" --db "$work/db-w2" --out "$work/tree-w2" --workers 2
  check "run --workers 2 on two cpus: exit 0 ($rc)" [ "$rc" -eq 0 ]
  check "... local-1 keeps its slot to cpu 0 ($err)" has "$err" "local-1: 1 slots (cells kept to cpus 0),"
  check "... local-2 to cpu 1" has "$err" "local-2: 1 slots (cells kept to cpus 1),"
  run limit taskset -c 0,1 "$imgsweep" run --binaries "$binaries" --testdata "$testdata" \
    --manifest "$work/m.json" --db "$work/db-off" --out "$work/tree-off" --pin-cells off
  check "run --pin-cells off: exit 0 ($rc)" [ "$rc" -eq 0 ]
  check "... two cells per cpu, on any ($err)" has "$err" "local-1: 4 slots (cells on any cpu),"
fi

json_total() { python3 -c "import json,sys; print(json.load(open('$work/out'))['total']['cells'])"; }
run limit "$imgsweep" status --db "$work/db" --json
check "status --db --json: exit 0 ($rc: $err)" [ "$rc" -eq 0 ]
check "status --db --json: a JSON document of every cell ($(head -c 200 "$work/out"))" \
  [ "$(json_total)" = $((versions * 4)) ]
IMGSWEEP_DB="$work/db" IMGSWEEP_JSON=1 run limit "$imgsweep" status
check "status from IMGSWEEP_DB and IMGSWEEP_JSON: exit 0 ($rc: $err)" [ "$rc" -eq 0 ]
check "status from the environment: the same document" [ "$(json_total)" = $((versions * 4)) ]
IMGSWEEP_DB=/nonexistent run limit "$imgsweep" status --db "$work/db"
check "the command line wins over the environment ($rc: $err)" [ "$rc" -eq 0 ]

run limit "$imgsweep" materialize --db "$work/no-store" --out "$work/t2" --log-format json
check "an error under --log-format json: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "an error under --log-format json: one JSON error record ($err)" python3 -c "
import json, sys
lines = [l for l in open('$work/err') if l.strip()]
r = json.loads(lines[-1])
sys.exit(not (r['level'] == 'error' and '$work/no-store' in r['message']))"
IMGSWEEP_LOG_FORMAT=json run limit "$imgsweep" materialize --db "$work/no-store" --out "$work/t2"
check "IMGSWEEP_LOG_FORMAT=json: errors as JSON too ($err)" has "$err" '{"time":'
run limit "$imgsweep" materialize --db "$work/no-store" --out "$work/t2"
check "without it: the plain error line ($err)" has "$err" "imgsweep: store $work/no-store"

IMGSWEEP_GIVE_UP_AFTER=1 run limit taskset -c 0 "$imgsweep" worker --connect tcp://127.0.0.1:9 \
  --binaries "$binaries" --testdata "$testdata"
check "a worker pinned to one core: one slot, and why ($err)" \
  has "$err" "1 cpus for cells, decided by the CPU affinity (1 of"
check "a worker pinned to one core: it says so, and keeps its cells there" \
  has "$err" ": 1 slots (cells kept to cpus 0),"
check "IMGSWEEP_GIVE_UP_AFTER=1: it gives up (exit 1: $rc)" [ "$rc" -eq 1 ]
IMGSWEEP_GIVE_UP_AFTER=1 run limit taskset -c 0 "$imgsweep" worker --connect tcp://127.0.0.1:9 \
  --binaries "$binaries" --testdata "$testdata" --pin-cells off
check "--pin-cells off: cells on any cpu ($err)" has "$err" ": 1 slots (cells on any cpu),"
run limit taskset -c 0 "$imgsweep" worker --connect tcp://127.0.0.1:9 \
  --binaries "$binaries" --testdata "$testdata" --pin-cells 0,1
check "--pin-cells naming a cpu the worker may not use: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "... naming it ($err)" has "$err" '"1" is not a cpu this process may run on (0)'
check "... before it stages anything" lacks "$err" "cells run on"
# The health file: there while a coordinator has the worker, gone after.
counting_binaries "$work/bins" "$work/executions.log"
start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$work/m.json" --out "$work/tree3" \
  --db "$work/db3" --binaries "$work/bins"
IMGSWEEP_TEST_DELAY=0.2 start_worker h1 --binaries "$work/bins" --testdata "$testdata" --slots 1 \
  --health-file "$work/health"
pid_h1=$!
limit sh -c "until [ -f '$work/health' ]; do sleep 0.05; done"
check "the health file appears once the worker is welcomed" grep -qx "welcomed h1" "$work/health"
wait "$coord_pid"; wait "$pid_h1"; rc=$?
check "the worker exits 0 ($rc)" [ "$rc" -eq 0 ]
check "the health file is gone when the worker is" [ ! -e "$work/health" ]
finish cli_test
