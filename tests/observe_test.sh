#!/usr/bin/env bash
# Watching a sweep: `status --connect` asks the running coordinator and lists
# both workers and every shard; Prometheus metrics scraped mid-sweep add up
# to the cell count; the progress line is logged when stderr is not a
# terminal and drawn in place when it is; --log-format json logs one JSON
# object per line.
# Usage: observe_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
manifest="$testdata/manifest.json"
cells=$(cell_count)
log="$work/executions.log"
counting_binaries "$work/bins" "$log"

# A sweep slow enough to watch: every cell sleeps 30 ms.
start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$manifest" --out "$work/tree" \
  --db "$work/db" --binaries "$work/bins" --metrics 127.0.0.1:0
metrics=$(sed -n 's/^imgsweep: metrics at //p' "$work/coord.out")
check "the coordinator says where its metrics are ($metrics)" has "$metrics" "http://127.0.0.1:"
for w in w1 w2; do
  IMGSWEEP_TEST_DELAY=0.03 start_worker "$w" --binaries "$work/bins" --testdata "$testdata" --slots 1
done
check "100 cells ran" wait_for_lines "$log" 100 60

run limit "$imgsweep" status --connect "$endpoint"
status=$(cat "$work/out")
check "status --connect exits 0 ($rc; $err)" [ "$rc" -eq 0 ]
check "it names the sweep (its store's random id) and where it asked" \
  grep -qE "^imgsweep: sweep \"[0-9a-f]{32}\" at $endpoint: " "$work/out"
check "it lists both workers ($status)" \
  grep -qE '^  w1 +[^ ]+ +1 ' "$work/out" && grep -qE '^  w2 +[^ ]+ +1 ' "$work/out"
for v in $(ls "$binaries/x86_64"); do
  check "it lists shard $v" grep -qE "^  $v +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+$" "$work/out"
done
run limit "$imgsweep" status --connect "$endpoint" --json
check "--json gives the coordinator's JSON" has "$(cat "$work/out")" "\"cells\":$cells,"

limit curl -sf "$metrics" >"$work/metrics"
check "the metrics endpoint answers mid-sweep" [ -s "$work/metrics" ]
sum=$(awk '/^imgsweep_cells\{/ { s += $2 } END { print s + 0 }' "$work/metrics")
check "imgsweep_cells adds up to the $cells cells ($sum)" [ "$sum" -eq "$cells" ]
check "the sweep was under way when scraped" \
  grep -qE '^imgsweep_cells\{outcome="exited_zero",state="done"\} [1-9]' "$work/metrics"
check "there are store and dispatch histograms" \
  grep -q '^imgsweep_store_commit_seconds_count [1-9]' "$work/metrics"
check "and each stored cell's time from assignment to stored" \
  grep -q '^imgsweep_cell_queued_to_stored_seconds_count [1-9]' "$work/metrics"
check "and a workers gauge" grep -q '^imgsweep_workers 2$' "$work/metrics"

wait "$coord_pid"; rc=$?
check "the sweep completes (rc $rc)" [ "$rc" -eq 0 ]
check "the last progress line is logged (stderr is not a terminal)" \
  grep -q "progress: $cells/$cells cells (100%), .* cells/s, done, 0 failed" "$work/coord.err"

# A terminal: `script` gives run a pseudo-terminal; the line is redrawn in place.
sha=$(sha256sum "$testdata/images/raw/empty.raw" | cut -d' ' -f1)
printf '{"version": 1, "images": [{"id": "a", "path": "images/raw/empty.raw", "format": "raw", "safety": "safe", "sha256": "%s"}]}\n' \
  "$sha" >"$work/small.json"
limit script -qec "$imgsweep run --binaries $binaries --testdata $testdata --manifest $work/small.json --out $work/tty-tree --db $work/tty.db" \
  /dev/null >"$work/tty.out" 2>&1
check "on a terminal the progress line is redrawn in place" grep -q $'\r\e\\[Kimgsweep: ' "$work/tty.out"
check "and ends complete" grep -qa "imgsweep: 10/10 cells (100%)" "$work/tty.out"

run limit "$imgsweep" --log-format json run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$work/small.json" --out "$work/json-tree" --db "$work/json.db"
check "--log-format json: exit 0 ($rc)" [ "$rc" -eq 0 ]
not_json=$(grep -cvE '^\{"time":"[0-9T:.+-]+","level":"[a-z]+","message":"([^"\\]|\\.)*"\}$' "$work/err")
check "every log line is a JSON object ($not_json are not)" [ "$not_json" -eq 0 ]
check "the progress is among them" grep -q '"message":"progress: 10/10 cells' "$work/err"
finish observe_test
