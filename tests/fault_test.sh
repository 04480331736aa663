#!/usr/bin/env bash
# Faults during a sweep, with real processes, sockets, qemu-img and RocksDB.
# Each case ends with a tree byte-identical to an undisturbed `run`, and a
# store where every cell has exactly one outcome. The qemu-img binaries are
# wrapped to log every execution, so the test counts them per cell.
#   kill-worker       kill -9 one of 3 workers mid-sweep
#   kill-coordinator  kill -9 the coordinator mid-sweep, restart it on the
#                     same store: no cell stored before the kill runs again
#   rerun-failed      a sweep where some cells fail (unrunnable binary) and
#                     some time out; with the cause gone, `rerun --failed`
#                     executes exactly those cells
#   sigterm-worker    SIGTERM to one of 2 workers mid-sweep: it takes no more
#                     cells, finishes and hands in those it holds, exits 0;
#                     no cell runs twice. A second SIGTERM to a draining
#                     worker ends it at once.
#   sigterm-coordinator  SIGTERM to the coordinator mid-sweep: it stores what
#                     it received, tells its worker to go, exits 1 saying
#                     "interrupted"; the same command line finishes the sweep
# Usage: fault_test.sh IMGSWEEP BINARIES TESTDATA CASE
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3" case_name="$4"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
# Every process's deadline, well under ctest's 300 s: a case that hangs
# then fails here and says what its processes logged.
deadline_seconds=120
manifest="$testdata/manifest.json"
cells=$(cell_count)
log="$work/executions.log"
counting_binaries "$work/bins" "$log"
faults=(--heartbeat-ms 200 --liveness 3)
# meta.json records the timeout: every sweep here uses the same one.
timeout_flag=(--timeout 3)

# The undisturbed run every case must match.
limit "$imgsweep" --quiet run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$manifest" --out "$work/ref" --db "$work/ref.db" "${timeout_flag[@]}" >/dev/null
check "the undisturbed run wrote a tree" [ -d "$work/ref/map-json/profiles" ]

# Every cell done, each with exactly one outcome; attempts before it were
# infrastructure failures (counted by kind).
one_outcome_each() {
  limit "$imgsweep" status --db "$work/db" --cells >"$work/status" 2>&1
  local cell_lines bad
  cell_lines=$(grep -c '^map-' "$work/status")
  bad=$(awk '/^map-/ { n = substr($4, 10); k = ($5 == "") ? 0 : split($5, a, ",")
                      if ($2 != "done" || n - k != 1) print }' "$work/status" | head -5)
  check "the store has every cell ($cell_lines of $cells)" [ "$cell_lines" -eq "$cells" ]
  check "every cell is done with exactly one outcome (${bad:-all are})" [ -z "$bad" ]
}
same_tree() {
  check "the tree is identical to an undisturbed run" diff -r "$work/ref" "$work/tree"
}
# serve [ENDPOINT]: a coordinator over the test bed into $work/tree and $work/db.
serve() {
  start_coordinator --listen "${1:-tcp://127.0.0.1:*}" --manifest "$manifest" --out "$work/tree" \
    --db "$work/db" --binaries "$work/bins" "${faults[@]}" "${timeout_flag[@]}"
}
# workers SLOTS NAME...: workers with short cells; each one's pid in $pid_NAME.
workers() {
  local slots="$1" w; shift
  for w in "$@"; do
    IMGSWEEP_TEST_WORKER=$w IMGSWEEP_TEST_DELAY=0.02 \
      start_worker "$w" --binaries "$work/bins" --testdata "$testdata" --slots "$slots"
    declare -g "pid_$w=$!"
  done
}
# stored_now FILE: the cells the store holds as done, sorted, into FILE.
stored_now() {
  limit "$imgsweep" status --db "$work/db" --cells >"$work/status-now"
  awk '$2 == "done" { print $1 }' "$work/status-now" | sort >"$1"
}
# ran_again STORED: runs per cell into $work/runs-per-cell; prints the cells
# of STORED that did not run exactly once.
ran_again() {
  keys_of_log "$log" | sort | uniq -c | awk '{ print $2, $1 }' >"$work/runs-per-cell"
  join "$1" "$work/runs-per-cell" | awk '$2 != 1' | head -5
}

case "$case_name" in
kill-worker)
  serve
  workers 1 w1 w2 w3
  # w2 is running cells: kill it where it stands.
  wait_for_line "$log" "w2 " 60
  check "w2 ran a cell before the kill" [ -n "$said" ]
  wait_for_lines "$log" 100 60
  victim=$(child_of "$pid_w2")
  check "found w2's process ($victim)" [ -n "$victim" ]
  kill -9 "$victim"
  run limit "$imgsweep" status --db "$work/db"
  check "status reads the store beside the running coordinator ($rc; $err)" \
    has "$(cat "$work/out")" "imgsweep: $cells cells (2 output types x 5 versions x 44 images)"
  wait "$coord_pid"; rc=$?
  check "the coordinator finishes the sweep (rc $rc; $(tail -2 "$work/coord.err"))" [ "$rc" -eq 0 ]
  check "it lost w2" grep -q "lost worker w2: silent for 600 ms" "$work/coord.err"
  wait "$pid_w1"; rc1=$?
  wait "$pid_w3"; rc3=$?
  check "the other workers exit 0 ($rc1, $rc3)" [ "$rc1" -eq 0 ] && [ "$rc3" -eq 0 ]
  summary=$(cat "$work/coord.out")
  check "the summary counts the lost worker ($summary)" has "$summary" "faults: 1 workers lost"
  same_tree
  one_outcome_each
  check "w2's cells went to others as worker-lost attempts" grep -q 'worker-lost' "$work/status"
  ;;

kill-coordinator)
  serve
  first_endpoint=$endpoint
  workers 1 w1 w2
  wait_for_lines "$log" 150 60
  check "150 cells ran before the kill" [ "$(wc -l <"$log")" -ge 150 ]
  kill -9 "$(child_of "$coord_pid")"
  wait "$coord_pid"
  cp "$work/coord.err" "$work/coord-1.err"
  # What the store held when the coordinator died must never run again.
  stored_now "$work/stored-at-kill"
  stored=$(wc -l <"$work/stored-at-kill")
  check "cells were stored before the kill ($stored)" [ "$stored" -gt 0 ]
  check "and some were not ($stored of $cells)" [ "$stored" -lt "$cells" ]
  serve "$first_endpoint"
  check "the restart listens where the first did ($endpoint)" [ "$endpoint" = "$first_endpoint" ]
  wait "$coord_pid"; rc=$?
  check "the restarted coordinator finishes the sweep (rc $rc; $(tail -2 "$work/coord.err"))" \
    [ "$rc" -eq 0 ]
  wait "$pid_w1"; rc1=$?
  wait "$pid_w2"; rc2=$?
  check "the workers reconnected by themselves and exit 0 ($rc1, $rc2)" \
    [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ]
  check "a worker said hello again" grep -q "joined again" "$work/w1.err" "$work/w2.err"
  twice=$(ran_again "$work/stored-at-kill")
  check "no cell stored before the kill ran twice (${twice:-none did})" [ -z "$twice" ]
  check "every cell ran" [ "$(wc -l <"$work/runs-per-cell")" -eq "$cells" ]
  echo "kill-coordinator: $stored of $cells cells stored at the kill; $(wc -l <"$log") executions;" \
    "$(awk '$2 > 1' "$work/runs-per-cell" | wc -l) cells ran twice (in flight at the kill)"
  same_tree
  one_outcome_each
  ;;

sigterm-worker)
  serve
  workers 2 w1 w2
  wait_for_lines "$log" 100 60
  kill -TERM "$(child_of "$pid_w2")"
  wait "$pid_w2"; rc2=$?
  check "w2 drains and exits 0 ($rc2; $(tail -1 "$work/w2.err"))" [ "$rc2" -eq 0 ]
  check "w2 took no more cells" grep -q "asked to stop: taking no more cells" "$work/w2.err"
  check "w2 handed in every cell it took" grep -q "drained: every cell it took is done and acknowledged" "$work/w2.err"
  wait "$coord_pid"; rc=$?
  check "the coordinator finishes the sweep with w1 (rc $rc; $(tail -2 "$work/coord.err"))" [ "$rc" -eq 0 ]
  wait "$pid_w1"; rc1=$?
  check "w1 exits 0 ($rc1)" [ "$rc1" -eq 0 ]
  twice=$(keys_of_log "$log" | sort | uniq -d | head -5)
  check "no cell ran twice (${twice:-none did})" [ -z "$twice" ]
  by_w2=$(grep -c '^w2 ' "$log")
  check "w2 ran some cells and w1 the rest ($by_w2 of $cells by w2)" \
    [ "$by_w2" -gt 0 ] && [ "$by_w2" -lt "$cells" ]
  same_tree
  one_outcome_each

  # A second SIGTERM while draining: out at once, with 128 + 15.
  start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$manifest" --out "$work/tree2" \
    --db "$work/db2" --binaries "$work/bins" "${faults[@]}" "${timeout_flag[@]}"
  : >"$log"
  # Its cell sleeps far longer than the checks below wait: only the
  # worker's exit can end it in time.
  IMGSWEEP_TEST_WORKER=w3 IMGSWEEP_TEST_DELAY=60 \
    start_worker w3 --binaries "$work/bins" --testdata "$testdata" --slots 1
  pid_w3=$!
  wait_for_lines "$log" 1 60
  w3=$(child_of "$pid_w3")
  cell=$(pgrep -f "$work/bins/x86_64" | head -1)
  cell_group=$(pgrep -g "$(ps -o pgid= -p "$cell" | tr -d ' ')" | tr '\n' ' ')
  check "the cell runs in a process group of its own ($cell_group)" [ -n "$cell_group" ]
  kill -TERM "$w3"
  wait_for_line "$work/w3.err" "asked to stop" 30
  check "w3 drains on the first SIGTERM" [ -n "$said" ]
  kill -TERM "$w3"
  wait "$pid_w3"; rc3=$?
  check "w3 exits at once on the second, with 143 ($rc3)" [ "$rc3" -eq 143 ]
  check "and says so" grep -q "asked to stop twice: exiting now" "$work/w3.err"
  # Each process of the cell's group ends with the worker (tail --pid
  # returns when the process is gone; timeout says 124 if it is not).
  left=""
  for p in $cell_group; do
    timeout 10 tail --pid="$p" -s 0.1 -f /dev/null || left+="$p "
  done
  check "the cell it was running ended with it (left: ${left:-none})" [ -z "$left" ]
  for p in $left; do kill -KILL "$p" 2>/dev/null; done
  ;;

sigterm-coordinator)
  serve
  first_endpoint=$endpoint
  workers 2 w1
  wait_for_lines "$log" 100 60
  kill -TERM "$(child_of "$coord_pid")"
  wait "$coord_pid"; rc=$?
  check "the coordinator exits 1 on SIGTERM ($rc)" [ "$rc" -eq 1 ]
  check "it says it was interrupted ($(tail -1 "$work/coord.err"))" \
    grep -q "interrupted by SIGTERM: every result received is stored" "$work/coord.err"
  wait "$pid_w1"; rc1=$?
  check "its worker was told to go and exits 0 ($rc1)" [ "$rc1" -eq 0 ]
  check "the worker says why" grep -q "the coordinator stopped: interrupted by SIGTERM" "$work/w1.err"
  check "no tree from an interrupted sweep" [ ! -e "$work/tree/map-json/version-map.json" ]
  stored_now "$work/stored-at-stop"
  stored=$(wc -l <"$work/stored-at-stop")
  check "cells were stored before the stop ($stored)" [ "$stored" -gt 0 ]
  serve "$first_endpoint"
  IMGSWEEP_TEST_WORKER=w2 start_worker w2 --binaries "$work/bins" --testdata "$testdata" --slots 2
  pid_w2=$!
  wait "$coord_pid"; rc=$?
  check "the same command line finishes the sweep (rc $rc)" [ "$rc" -eq 0 ]
  wait "$pid_w2"
  twice=$(ran_again "$work/stored-at-stop")
  check "no cell stored before the stop ran again (${twice:-none did})" [ -z "$twice" ]
  same_tree
  one_outcome_each
  ;;

rerun-failed)
  # Two faults: 7.2.0's binary cannot run on raw-empty (an infrastructure
  # failure, retried, then failed); 10.0.2 hangs on qcow2-data (a timeout).
  cat >"$work/bins/hooks.sh" <<HOOKS
if [ -e "$work/fault" ]; then
  case "\$version \$*" in
    "7.2.0 "*/raw/empty.raw) echo "loader: cannot open shared object" >&2; exit 127 ;;
    "10.0.2 "*/qcow2/data.qcow2) exec sleep 600 ;;
  esac
fi
HOOKS
  touch "$work/fault"
  run limit "$imgsweep" run --binaries "$work/bins" --testdata "$testdata" --manifest "$manifest" \
    --out "$work/tree" --db "$work/db" "${timeout_flag[@]}"
  check "a sweep with failed cells exits 1 ($rc)" [ "$rc" -eq 1 ]
  check "and says so ($err)" has "$err" "2 cells failed on every attempt"
  run limit "$imgsweep" status --db "$work/db"
  status=$(cat "$work/out")
  check "status lists the failed cells with every attempt's reason ($status)" \
    has "$status" "map-human/7.2.0/raw-empty: #1 binary-unrunnable: "
  check "three attempts each" has "$status" "#3 binary-unrunnable"
  check "status lists the timed-out cells" has "$status" "map-json/10.0.2/qcow2-data: #1 timeout"
  check "and what reruns them" has "$status" '`imgsweep rerun --failed` runs these 4 cells again.'
  printf '%s\n' map-human/10.0.2/qcow2-data map-human/7.2.0/raw-empty \
    map-json/10.0.2/qcow2-data map-json/7.2.0/raw-empty | sort >"$work/expected-reruns"
  rm "$work/fault" "$log"
  run limit "$imgsweep" rerun --db "$work/db" --out "$work/tree" --failed \
    --binaries "$work/bins" --testdata "$testdata"
  check "rerun --failed exits 0 ($rc; $err)" [ "$rc" -eq 0 ]
  check "it put 4 cells back" has "$(cat "$work/out")" "4 cells put back in the queue"
  keys_of_log "$log" | sort >"$work/reruns"
  check "it executed exactly the failed and timed-out cells, once each" \
    diff "$work/expected-reruns" "$work/reruns"
  same_tree
  run limit "$imgsweep" status --db "$work/db" --cells
  check "every attempt is kept: 3 failed ones and the outcome" \
    grep -q "^map-human/7.2.0/raw-empty done exited attempts=4 binary-unrunnable,binary-unrunnable,binary-unrunnable$" "$work/out"
  run limit "$imgsweep" rerun --db "$work/db" --out "$work/tree" --shard 9.9.9 \
    --binaries "$work/bins" --testdata "$testdata"
  check "rerun of an unknown shard: exit 2 ($rc)" [ "$rc" -eq 2 ]
  check "naming the versions ($err)" has "$err" "rerun --shard 9.9.9: not a version of this sweep (it has 5.2.0, "
  : >"$log"
  run limit "$imgsweep" rerun --db "$work/db" --out "$work/tree" --image qcow2-data \
    --binaries "$work/bins" --testdata "$testdata"
  check "rerun --image exits 0 ($rc; $err)" [ "$rc" -eq 0 ]
  check "and runs that image at every version and type" \
    [ "$(keys_of_log "$log" | grep -c '/qcow2-data$')" -eq 10 ] && [ "$(wc -l <"$log")" -eq 10 ]
  same_tree
  # The same with remote workers: rerun serves a shard to a worker that connects.
  : >"$log"
  rm -r "$work/tree"
  serve_cmd=rerun start_coordinator --db "$work/db" --out "$work/tree" --shard 7.2.0 \
    --listen 'tcp://127.0.0.1:*' "${faults[@]}"
  check "rerun --listen says what it put back and where it listens" \
    grep -q "88 cells put back in the queue" "$work/coord.out"
  IMGSWEEP_TEST_WORKER=w1 start_worker w1 --binaries "$work/bins" --testdata "$testdata"
  pid_w1=$!
  wait "$coord_pid"; rc=$?
  check "rerun --listen exits 0 ($rc; $(tail -2 "$work/coord.err"))" [ "$rc" -eq 0 ]
  wait "$pid_w1"; rc=$?
  check "its worker exits 0 ($rc)" [ "$rc" -eq 0 ]
  check "the remote worker ran exactly the shard's 88 cells" \
    [ "$(keys_of_log "$log" | grep -c '/7.2.0/')" -eq 88 ] && [ "$(wc -l <"$log")" -eq 88 ]
  same_tree
  ;;
*)
  echo "unknown case $case_name" >&2
  exit 2
  ;;
esac
if [ "$failed" -gt 0 ]; then
  for f in "$work"/*.err; do echo "--- the end of $(basename "$f")" >&2; tail -15 "$f" >&2; done
fi
finish "fault_test $case_name"
