#!/usr/bin/env bash
# The cross-host audit with real processes. Three workers report three
# hosts (--host); one, the liar, prints its own text for every cell it runs
# (a hook of the counting binaries, so its binaries' digests are the real
# ones). With --audit 100 every cell runs on two hosts, and a cell the liar
# ran goes on to the third. None of the liar's text reaches the tree, which
# equals a clean run's; `status` and the report list each finding with the
# cell, both hosts and the first differing line.
# Usage: audit_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
cd "$work" || exit 1

counting_binaries "$work/bins" "$work/cells.log"
cat >"$work/bins/hooks.sh" <<'HOOK'
if [ "${IMGSWEEP_TEST_WORKER:-}" = liar ]; then echo "forged by the liar"; exit 0; fi
HOOK
two_image_manifest "$work/m.json"
cells=$(( 2 * $(ls "$binaries/x86_64" | wc -l) * 2 ))

start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$work/m.json" --out "$work/tree" \
  --db "$work/db" --binaries "$work/bins" --audit 100
# The liar first, so that it holds cells before anyone else.
IMGSWEEP_TEST_WORKER=liar start_worker liar --binaries "$work/bins" --testdata "$testdata" \
  --host host-b --slots 1
wait_for_line "$work/coord.err" "worker liar@host-b joined" 60
check "the liar joined" [ -n "$said" ]
IMGSWEEP_TEST_WORKER=w1 start_worker w1 --binaries "$work/bins" --testdata "$testdata" --host host-a
IMGSWEEP_TEST_WORKER=w2 start_worker w2 --binaries "$work/bins" --testdata "$testdata" --host host-c
wait "$coord_pid"; rc=$?
check "the audited sweep completes (rc $rc; $(tail -2 "$work/coord.err"))" [ "$rc" -eq 0 ]
liar_ran=$(grep -c '^liar ' "$work/cells.log")
check "the liar ran cells ($liar_ran)" [ "$liar_ran" -gt 0 ]
check "every cell ran at least twice ($(wc -l <"$work/cells.log") runs, $cells cells)" \
  [ "$(wc -l <"$work/cells.log")" -ge $(( 2 * cells )) ]
check "nothing of the liar's is in the tree" [ -z "$(grep -rl "forged by the liar" "$work/tree")" ]
check "the coordinator logged the mismatches" grep -q "audit: .* printed differently on host-a, host-b\|audit: .* printed differently on host-b, host-c" "$work/coord.err"

# A clean run of the same sweep, without the liar or the audit.
stop_all
mv "$work/coord.err" "$work/audited-coord.err"
start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$work/m.json" --out "$work/clean" \
  --db "$work/clean-db" --binaries "$work/bins"
IMGSWEEP_TEST_WORKER=w1 start_worker w1 --binaries "$work/bins" --testdata "$testdata"
wait "$coord_pid"; rc=$?
check "the clean sweep completes (rc $rc)" [ "$rc" -eq 0 ]
check "the audited tree equals the clean run's" diff -r "$work/tree" "$work/clean"

limit "$imgsweep" status --db "$work/db" >"$work/status" 2>&1
findings=$(grep -c '^  map-.*: host-' "$work/status")
check "status lists the findings ($findings)" [ "$findings" -gt 0 ]
check "every finding names the liar's host, the line and who broke the tie ($(grep '^  map-.*: host-' "$work/status" | head -1))" \
  [ "$(grep '^  map-.*: host-' "$work/status" | grep 'host-b' | grep 'forged by the liar' |
       grep -c 'agrees with host-[ac]')" -eq "$findings" ]
limit "$imgsweep" report --db "$work/db" --out "$work/report.html" >/dev/null 2>&1
check "the report lists the findings" grep -q '"findings":\[{"key"' "$work/report.html"
finish audit_test
