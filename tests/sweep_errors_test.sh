#!/usr/bin/env bash
# Bad input to the sweep: each case gets one clear error naming what was
# wrong, the documented exit code, and no tree (nor store) left behind.
# A version no worker holds makes the coordinator wait and say which.
# Usage: sweep_errors_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
cd "$work" || exit 1
sha=$(printf 'a%.0s' $(seq 64))
raw_sha=$(sha256sum "$testdata/images/raw/empty.raw" | cut -d' ' -f1)
entry() {  # ID PATH FORMAT [SHA]
  printf '{"id": "%s", "path": "%s", "format": "%s", "safety": "safe", "sha256": "%s"}' \
    "$1" "$2" "$3" "${4:-$raw_sha}"
}
manifest() { echo "{\"version\": 1, \"images\": [$1]}" >"$work/m.json"; }
sweep() {
  run limit "$imgsweep" run --binaries "${BIN:-$binaries}" --testdata "$testdata" \
    --manifest "${MANIFEST:-$work/m.json}" --out "$work/tree" --db "$work/db"
}
refused() {  # WHAT EXPECTED-ERROR
  check "$1: exit 2 ($rc)" [ "$rc" -eq 2 ]
  check "$1: says why (got: $err)" has "$err" "$2"
  check "$1: no tree" [ ! -e "$work/tree" ]
  check "$1: no store" [ ! -e "$work/db" ]
}

MANIFEST=/nonexistent/manifest.json sweep
refused "missing manifest" "imgsweep: manifest /nonexistent/manifest.json: No such file or directory"

echo '{"version": 1, "images": [' >"$work/m.json"
sweep
refused "malformed manifest" "imgsweep: $work/m.json: not valid JSON"

manifest "$(entry a images/raw/empty.raw raw), {\"id\": \"b\", \"format\": \"raw\", \"safety\": \"safe\", \"sha256\": \"$sha\"}"
sweep
refused "entry without a path" "imgsweep: $work/m.json: images[1] (\"b\"): field \"path\": missing"

manifest "$(entry a images/raw/empty.raw qcow3)"
sweep
refused "unknown format" "images[0] (\"a\"): field \"format\": unknown format \"qcow3\""

manifest "$(entry a ../../etc/passwd raw)"
sweep
refused "path leaving the root" "images[0] (\"a\"): field \"path\": \"../../etc/passwd\" leaves the testdata root"

manifest "$(entry a images/raw/empty.raw raw), $(entry a images/raw/holes.raw raw)"
sweep
refused "duplicate ids" "images[1] (\"a\"): field \"id\": duplicate of images[0]"

manifest "$(entry a images/raw/not-there.raw raw)"
sweep
refused "image missing from the testdata" "image \"a\": images/raw/not-there.raw is not there"

# Names from outside become paths only once they are safe names.
for id in ../../etc/x a/b ..; do
  manifest "$(entry "$id" images/raw/empty.raw raw)"
  sweep
  refused "image id $id" "images[0]: field \"id\": \"$id\" is not a safe name ([A-Za-z0-9._-], not \".\" or \"..\")"
done
mkdir -p "$work/odd-binaries/x86_64/..." "$work/odd-binaries/x86_64/7.2.0"
cp "$binaries/x86_64/7.2.0/qemu-img" "$work/odd-binaries/x86_64/7.2.0/" 2>/dev/null
manifest "$(entry a images/raw/empty.raw raw)"
BIN="$work/odd-binaries" sweep
refused "a version folder named ..." "binaries tree $work/odd-binaries: x86_64/... is not a version name (X.Y.Z)"
run limit "$imgsweep" coordinator --listen 'tcp://127.0.0.1:*' --manifest "$work/m.json" \
  --out "$work/tree" --db "$work/db" --versions 7.2.0,..
refused "version .. on the command line" '".." is not a version name'
# A link inside the testdata that leads out of it is refused like "..".
mkdir -p "$work/td-link-out/images/raw"
ln -s /etc/hostname "$work/td-link-out/images/raw/empty.raw"
run limit "$imgsweep" run --binaries "$binaries" --testdata "$work/td-link-out" \
  --manifest "$work/m.json" --out "$work/tree" --db "$work/db"
refused "an image link leading out of the testdata" \
  "image \"a\": images/raw/empty.raw resolves to $(realpath /etc/hostname), outside the testdata root"

mkdir -p "$work/empty-binaries/x86_64"
manifest "$(entry a images/raw/empty.raw raw)"
BIN="$work/empty-binaries" sweep
refused "empty binaries tree" "binaries tree $work/empty-binaries: no versions under x86_64/"

run limit "$imgsweep" run --binaries "$binaries" --testdata "$testdata" --manifest "$work/m.json"
refused "missing --out" "--out is required"

run limit "$imgsweep" materialize --db "$work/no-store" --out "$work/tree"
refused "materialize without a store" "store $work/no-store: no such directory"

# A store keeps what it holds when the sweep changes: another manifest on
# it runs only the cells it lacks, and nothing stored is lost: back to the
# first manifest, nothing runs.
manifest "$(entry a images/raw/empty.raw raw)"
mkdir -p "$work/tmp"
TMPDIR="$work/tmp" sweep
check "a one-image sweep runs" [ "$rc" -eq 0 ]
check "its private socket folder is gone" [ -z "$(ls -A "$work/tmp")" ]
manifest "$(entry b images/raw/empty.raw raw)"
run limit "$imgsweep" run --binaries "$binaries" --testdata "$testdata" --manifest "$work/m.json" \
  --out "$work/out2" --db "$work/db"
out=$(cat "$work/out")
check "another sweep on that store runs ($rc)" [ "$rc" -eq 0 ]
check "it says what changed ($err)" has "$err" "the sweep changed: 1 image added: b; 1 image dropped: a"
cells_now=$(( $(ls "$binaries/x86_64" | wc -l) * 2 ))
check "it runs the new image's cells ($out)" has "$out" "$cells_now run now, 0 already stored"
check "its tree has b" [ -f "$work/out2/map-human/raw/7.2.0/b.stdout.txt" ]
manifest "$(entry a images/raw/empty.raw raw)"
run limit "$imgsweep" run --binaries "$binaries" --testdata "$testdata" --manifest "$work/m.json" \
  --out "$work/out3" --db "$work/db"
out=$(cat "$work/out")
check "the first sweep again: nothing runs ($out)" has "$out" "0 run now, $cells_now already stored"
check "the first sweep's tree is written again" [ -f "$work/out3/map-human/raw/7.2.0/a.stdout.txt" ]

# Reading a tree or a store that is not there, or a type the sweep lacks.
run limit "$imgsweep" validate --out "$work/nothing"
check "validate without a tree: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "validate without a tree: says so ($err)" has "$err" "imgsweep: $work/nothing: no such folder"
run limit "$imgsweep" profiles --db "$work/no-store"
check "profiles without a store: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "profiles without a store: says so ($err)" has "$err" "store $work/no-store: no such directory"
run limit "$imgsweep" profiles --db "$work/db" --output-type info
check "profiles of an unknown type: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "profiles of an unknown type: names the known ones ($err)" \
  has "$err" 'no output type "info" in this sweep (it has map-human, map-json)'

# A version no worker holds: the coordinator waits and names it.
manifest "$(entry a images/raw/empty.raw raw)"
start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$work/m.json" --out "$work/out4" \
  --db "$work/db4" --versions 7.2.0,9.9.9
start_worker w1 --binaries "$binaries" --testdata "$testdata" --slots 1
wait_for_line "$work/coord.err" "waiting for a worker that holds 9.9.9" 60
check "names the version no worker holds (got: $said)" has "$said" "waiting for a worker that holds 9.9.9 (2 cells)"
check "the coordinator is still waiting" kill -0 "$coord_pid"
stop_all
check "no tree for an unfinished sweep" [ ! -e "$work/out4" ]

# An image whose bytes differ from the manifest is never a baseline: every
# attempt fails on it, the cell fails, and no tree is written.
mkdir -p "$work/td-bad/images/raw"
printf 'other bytes' >"$work/td-bad/images/raw/empty.raw"
manifest "$(entry a images/raw/empty.raw raw)"
run limit "$imgsweep" run --binaries "$binaries" --testdata "$work/td-bad" --manifest "$work/m.json" \
  --out "$work/tree-bad" --db "$work/db-bad"
check "a differing image copy: exit 1 ($rc)" [ "$rc" -eq 1 ]
check "a differing image copy: the worker says why" \
  has "$err" "image images/raw/empty.raw: this host's copy has sha256 $(printf 'other bytes' | sha256sum | cut -d' ' -f1), the manifest says $raw_sha"
check "a differing image copy: every cell failed" has "$err" "10 cells failed on every attempt"
check "a differing image copy: no tree" [ ! -e "$work/tree-bad" ]

# --allow-partial writes what there is, but never a type without a version-map.json: here
# image a fails on every version, so no version is complete and nothing is written.
mkdir -p "$work/td-part/images/raw"
printf 'other bytes' >"$work/td-part/images/raw/empty.raw"
cp "$testdata/images/raw/holes.raw" "$work/td-part/images/raw/holes.raw"
holes_sha=$(sha256sum "$testdata/images/raw/holes.raw" | cut -d' ' -f1)
manifest "$(entry a images/raw/empty.raw raw), $(entry b images/raw/holes.raw raw "$holes_sha")"
run limit "$imgsweep" run --binaries "$binaries" --testdata "$work/td-part" --manifest "$work/m.json" \
  --out "$work/tree-part" --db "$work/db-part" --allow-partial
check "--allow-partial without a complete version: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "--allow-partial without a complete version: says why ($err)" \
  has "$err" "output type map-human has no version with an outcome for every image, so it would have no version-map.json; nothing written (10 cells have no outcome)"
check "--allow-partial without a complete version: no tree" [ ! -e "$work/tree-part" ]
run limit "$imgsweep" materialize --db "$work/db-part" --out "$work/tree-part2"
check "materialize of that store without --allow-partial: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "materialize of that store: names the missing cells ($err)" \
  has "$err" "10 of 20 cells have no outcome (map-human/5.2.0/a, map-human/7.2.0/a, map-human/10.0.2/a, map-human/10.0.13/a, map-human/11.1.3/a, ...); nothing written (--allow-partial writes the rest)"
check "materialize of that store: no tree" [ ! -e "$work/tree-part2" ]

# `run` killed with SIGKILL mid-sweep leaves no worker behind.
ln -s "$testdata" "$work/td-link"
mkdir -p "$work/tmp-killed"
TMPDIR="$work/tmp-killed" timeout -k 5 "$deadline_seconds" "$imgsweep" run --binaries "$binaries" --testdata "$work/td-link" \
  --manifest "$testdata/manifest.json" --out "$work/tree-killed" --db "$work/db-killed" \
  >/dev/null 2>"$work/killed.err" &
run_pid=$!
pids+=("$run_pid")
wait_for_line "$work/killed.err" "joined sweep" 60
sweeper=$(pgrep -P "$run_pid")  # imgsweep run, the child of timeout
workers=$(pgrep -P "$sweeper" | tr '\n' ' ')
check "run started its workers ($workers)" [ -n "$workers" ]
# They talk over an ipc socket in a folder only this user may enter, not
# tcp on loopback, which every user of the host could reach.
first=${workers%% *}
socket=$(tr '\0' '\n' <"/proc/$first/cmdline" | grep '^ipc://' | sed 's|^ipc://||')
check "local workers connect to an ipc socket under TMPDIR ($socket)" \
  [ -S "$socket" ] && [[ "$socket" == "$work/tmp-killed/imgsweep-"*/coordinator ]]
check "its folder is private" [ "$(stat -c %a "$(dirname "$socket")")" = 700 ]
kill -KILL "$sweeper"
for w in $workers; do
  timeout 30 tail --pid="$w" -f /dev/null  # waits for the pid to end, at most 30 s
  check "worker $w exits with it" bash -c "! kill -0 $w 2>/dev/null"
done
rm -rf "$(dirname "$socket")"  # a killed run cannot remove it

finish sweep_errors_test
