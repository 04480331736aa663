#!/usr/bin/env bash
# Across hosts: the coordinator and two workers each in a network namespace
# of their own, joined by veth pairs (10.213.1.0/24 to w1, 10.213.2.0/24 to
# w2). Mid-sweep w1's link goes down: the coordinator loses w1 and its cells
# go to w2; w1 notices the silence. The link comes back: w1 reconnects by
# itself, says hello again and works on. The tree equals an undisturbed
# run's and every cell has exactly one outcome.
# Usage: netns_fault_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
manifest="$testdata/manifest.json"
cells=$(cell_count)

c="imgsweep-c-$$" n1="imgsweep-w1-$$" n2="imgsweep-w2-$$"
cleanup() { stop_all; for ns in "$c" "$n1" "$n2"; do ip netns del "$ns" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
for ns in "$c" "$n1" "$n2"; do
  ip netns add "$ns" || { echo "cannot make a network namespace (needs root)" >&2; exit 1; }
  ip -n "$ns" link set lo up
done
ip -n "$c" link add c1 type veth peer name e1 netns "$n1"
ip -n "$c" link add c2 type veth peer name e2 netns "$n2"
ip -n "$c" addr add 10.213.1.1/24 dev c1
ip -n "$c" addr add 10.213.2.1/24 dev c2
ip -n "$n1" addr add 10.213.1.2/24 dev e1
ip -n "$n2" addr add 10.213.2.2/24 dev e2
for link in "$c c1" "$c c2" "$n1 e1" "$n2 e2"; do
  read -r ns dev <<<"$link"
  ip -n "$ns" link set "$dev" up
done

limit "$imgsweep" --quiet run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$manifest" --out "$work/ref" --db "$work/ref.db" >/dev/null
check "the undisturbed run wrote a tree" [ -d "$work/ref/map-json/profiles" ]
log="$work/executions.log"
counting_binaries "$work/bins" "$log"

wrap=(ip netns exec "$c")
start_coordinator --listen 'tcp://0.0.0.0:*' --insecure --manifest "$manifest" --out "$work/tree" \
  --db "$work/db" --binaries "$work/bins" --heartbeat-ms 200 --liveness 3
port=${endpoint##*:}
check "the coordinator listens in its namespace ($endpoint)" [ -n "$port" ]
wrap=(ip netns exec "$n1")
endpoint="tcp://10.213.1.1:$port" IMGSWEEP_TEST_WORKER=w1 IMGSWEEP_TEST_DELAY=0.03 \
  start_worker w1 --binaries "$work/bins" --testdata "$testdata" --slots 1 \
    --insecure
pid_w1=$!
wrap=(ip netns exec "$n2")
endpoint="tcp://10.213.2.1:$port" IMGSWEEP_TEST_WORKER=w2 IMGSWEEP_TEST_DELAY=0.03 \
  start_worker w2 --binaries "$work/bins" --testdata "$testdata" --slots 1 \
    --insecure
pid_w2=$!

check "60 cells ran" wait_for_lines "$log" 60 60
wait_for_line "$log" "w1 " 30
check "w1 is running cells" [ -n "$said" ]
ip -n "$n1" link set e1 down
wait_for_line "$work/coord.err" "lost worker w1" 30
check "the coordinator loses w1 ($said)" has "$said" "lost worker w1: silent for 600 ms"
wait_for_line "$work/w1.err" "no word from the coordinator" 30
check "w1 notices the silence ($said)" [ -n "$said" ]
ip -n "$n1" link set e1 up
wait_for_line "$work/w1.err" "joined again" 60
check "w1 reconnects by itself and says hello again ($said)" [ -n "$said" ]

wait "$coord_pid"; rc=$?
check "the sweep completes (rc $rc; $(tail -2 "$work/coord.err"))" [ "$rc" -eq 0 ]
wait "$pid_w1"; rc1=$?
wait "$pid_w2"; rc2=$?
check "both workers exit 0 when it is over ($rc1, $rc2)" [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ]
check "the summary counts the lost worker" grep -q "faults: 1 workers lost" "$work/coord.out"
check "the tree is identical to an undisturbed run" diff -r "$work/ref" "$work/tree"
limit "$imgsweep" status --db "$work/db" --cells >"$work/status"
bad=$(awk '/^map-/ { n = substr($4, 10); k = ($5 == "") ? 0 : split($5, a, ",")
                    if ($2 != "done" || n - k != 1) print }' "$work/status" | head -5)
check "the store has every cell" [ "$(grep -c '^map-' "$work/status")" -eq "$cells" ]
check "each with exactly one outcome (${bad:-all are})" [ -z "$bad" ]
finish netns_fault_test
