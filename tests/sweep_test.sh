#!/usr/bin/env bash
# The end-to-end sweep on the test bed, with real processes and sockets:
# a coordinator and 2 workers over tcp loopback write a tree that equals, cell
# for cell, an independent direct run of each argv (root replaced); then `run`
# with 1 and 3 workers, and with the testdata moved, gives the same bytes, and
# `imgsweep materialize` from the store gives them again.
# Usage: sweep_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
manifest="$testdata/manifest.json"

# 1. A coordinator and two workers over tcp loopback.
start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$manifest" --out "$work/tree" \
  --db "$work/db" --binaries "$binaries" --endpoint-file "$work/endpoint"
check "coordinator says where it listens" [ -n "$endpoint" ]
check "--endpoint-file holds the same endpoint" [ "$(cat "$work/endpoint")" = "$endpoint" ]
start_worker w1 --binaries "$binaries" --testdata "$testdata" --slots 1
w1=$!
start_worker w2 --binaries "$binaries" --testdata "$testdata" --slots 1
w2=$!
wait "$coord_pid"; rc=$?
check "coordinator exits 0 (rc $rc; $(tail -3 "$work/coord.err"))" [ "$rc" -eq 0 ]
wait "$w1"; rc1=$?
wait "$w2"; rc2=$?
check "workers exit 0 when the sweep is over ($rc1, $rc2)" [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ]
summary=$(cat "$work/coord.out")
check "both workers ran cells" has "$summary" "w1 ran" && has "$summary" "w2 ran"

# 2. Every cell against a direct run of its argv, from the root of a dense
# copy of the testdata (every byte allocated, as the consumers' git
# checkouts hold it): the workers ran on their dense staged copies.
cp -r --sparse=never "$testdata" "$work/dense"
root="$(realpath "$work/dense")"
versions=$(ls "$binaries/x86_64")
cells=0 mismatches=0
while read -r id path format; do
  for v in $versions; do
    for type in map-human map-json; do
      args=(map)
      [ "$type" = map-json ] && args+=(--output=json)
      direct_run "$root" "$v" "$work/direct" "${args[@]}" "$root/$path"
      base="$work/tree/$type/$format/$v/$id"
      cells=$((cells + 1))
      if ! cmp -s "$work/direct.out" "$base.stdout.txt" ||
         ! cmp -s "$work/direct.err" "$base.stderr.txt" ||
         ! grep -q "\"return_code\": $rc," "$base.meta.json" ||
         ! grep -q "\"stdout_bytes\": $(wc -c <"$work/direct.out")," "$base.meta.json"; then
        mismatches=$((mismatches + 1))
        echo "differs from a direct run: $type/$format/$v/$id" >&2
      fi
    done
  done
done < <(safe_cells)
check "the tree has 3 files per cell ($cells cells)" \
  [ "$(find "$work/tree" -path '*/profiles' -prune -o -type f ! -name version-map.json -print |
       wc -l)" -eq $((cells * 3)) ]
check "every cell equals a direct run ($mismatches of $cells differ)" [ "$mismatches" -eq 0 ]
check "a cell that exits 1 is a baseline" grep -q '"return_code": 1,' \
  "$work/tree/map-human/qcow2/7.2.0/qcow2-compressed.meta.json"

# 3. Profiles: the contract's counts on the test bed, and why they split.
check "map-human has 1 profile" [ "$(ls "$work/tree/map-human/profiles")" = profile-5-2-0 ]
check "map-json has 3 profiles" \
  [ "$(ls "$work/tree/map-json/profiles" | tr '\n' ' ')" = "profile-10-0-2 profile-5-2-0 profile-7-2-0 " ]
map=$(tr -d ' \n' <"$work/tree/map-json/version-map.json")
check "version-map.json in version order, 10.0.x and 11.1.x in profile-10-0-2 ($map)" [ "$map" = \
  '{"profiles":{"profile-5-2-0":"5.2.0","profile-7-2-0":"7.2.0","profile-10-0-2":"10.0.2"},"version_to_profile":{"5.2.0":"profile-5-2-0","7.2.0":"profile-7-2-0","10.0.2":"profile-10-0-2","10.0.13":"profile-10-0-2","11.1.3":"profile-10-0-2"}}' ]
check "a profile holds its earliest version's files" \
  diff "$work/tree/map-json/qcow2/7.2.0/qcow2-compressed.meta.json" \
  "$work/tree/map-json/profiles/profile-7-2-0/qcow2-compressed.meta.json"
check "the tree validates" limit "$imgsweep" validate --out "$work/tree"
run limit "$imgsweep" profiles --db "$work/db" --output-type map-json
report=$(cat "$work/out")
check "profiles explains 5.2.0 -> 7.2.0 by the present field ($report)" \
  has "$report" "$(printf '5.2.0 -> 7.2.0: 44/44 images differ\n    JSON fields added: present\n')"
check "profiles explains 7.2.0 -> 10.0.2 by the compressed field" \
  has "$report" "$(printf '7.2.0 -> 10.0.2: 44/44 images differ\n    JSON fields added: compressed\n')"
check "profiles shows a diff" \
  grep -Eq '^ *\+\[\{ "start": 0, "length": [0-9]+, "depth": 0, "present": true' <<<"$report"
cp -a "$work/tree" "$work/tampered"
printf 'x' >>"$work/tampered/map-json/profiles/profile-7-2-0/raw-full.stdout.txt"
run limit "$imgsweep" validate --out "$work/tampered"
check "validate finds a stdout longer than its meta says (rc $rc)" [ "$rc" -eq 1 ] && \
  has "$(cat "$work/out")" "map-json/profiles/profile-7-2-0/raw-full.stdout.txt: 107 bytes, but meta.json says stdout_bytes 106"

# 4. The same sweep by `run`: 1 worker, 3 workers, the testdata elsewhere.
sweep() {  # NAME TESTDATA WORKERS
  limit "$imgsweep" run --binaries "$binaries" --testdata "$2" --manifest "$2/manifest.json" \
    --out "$work/tree-$1" --db "$work/db-$1" --workers "$3" >"$work/run-$1.out" 2>"$work/run-$1.err"
}
check "run with 1 worker" sweep one "$testdata" 1
check "run with 3 workers" sweep three "$testdata" 3
for t in one three; do
  check "tree of $t is byte-identical" diff -r "$work/tree" "$work/tree-$t"
done
# Moved, not copied: qemu-img map reports the file system's allocation, and
# a copy may allocate differently (cp turned a written zero block of
# vpc-fixed into a hole), which no path substitution can undo.
mkdir -p "$work/here" "$work/elsewhere/deeper"
cp -a "$testdata" "$work/here/td"
check "run on a private copy" sweep copy "$work/here/td" 2
mv "$work/here/td" "$work/elsewhere/deeper/td"
check "run with that copy moved" sweep moved "$work/elsewhere/deeper/td" 2
check "moving the testdata changes no byte" diff -r "$work/tree-copy" "$work/tree-moved"
check "the tree names no host path" \
  bash -c "! grep -rqF -e '$work' -e '$(realpath "$testdata")' '$work/tree-moved'"
check "3 local workers all ran cells" [ "$(grep -c ' ran ' "$work/run-three.out")" -eq 3 ]

# 5. From the store alone.
check "materialize from the store" limit "$imgsweep" materialize --db "$work/db" --out "$work/tree-again"
check "materialized tree is byte-identical" diff -r "$work/tree" "$work/tree-again"
run limit "$imgsweep" materialize --db "$work/db" --out "$work/tree"
check "re-materialising an unchanged store writes no file" has "$(cat "$work/out")" "(0 files written"
run limit "$imgsweep" run --binaries "$binaries" --testdata "$testdata" --manifest "$manifest" \
  --out "$work/tree-one" --db "$work/db-one" --workers 1
check "a rerun on a finished store runs nothing" has "$(cat "$work/out")" "0 run now"

finish sweep_test
