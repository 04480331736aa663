#!/usr/bin/env bash
# A binaries tree with broken builds beside the real releases: one whose
# --version hangs, one that crashes, one whose loader is missing (exit 127).
# The workers offer the releases that run and report the others; the sweep
# completes, the tree holds every working release's cells, and the broken
# versions are named with their reasons.
# Usage: broken_builds_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"

bins="$work/bins/x86_64"
mkdir -p "$bins/9.0.0" "$bins/9.1.0" "$bins/9.2.0"
ln -s "$binaries/x86_64/7.2.0" "$bins/7.2.0"
ln -s "$binaries/x86_64/10.0.2" "$bins/10.0.2"
# A duration no other test uses: the check below looks machine-wide, and
# tests that run beside this one hang their own binaries in "sleep 600".
printf '#!/bin/sh\nexec sleep 599.0417\n' >"$bins/9.0.0/qemu-img"
printf '#!/bin/sh\nkill -SEGV $$\n' >"$bins/9.1.0/qemu-img"
printf '#!/bin/sh\necho "qemu-img: error while loading shared libraries: libaio.so.1" >&2\nexit 127\n' \
  >"$bins/9.2.0/qemu-img"
chmod +x "$bins"/9.*/qemu-img

run limit "$imgsweep" run --binaries "$work/bins" --testdata "$testdata" \
  --manifest "$testdata/manifest.json" --out "$work/tree" --db "$work/db"
out=$(cat "$work/out")
check "the sweep completes, exit 1 for the broken builds (rc $rc; $(tail -3 "$work/err"))" [ "$rc" -eq 1 ]
check "it says the tree leaves them out ($err)" \
  has "$err" "failed because their version cannot run; the tree leaves those versions out"
check "the hanging build is named with why ($out)" has "$out" "broken version, left out: 9.0.0 (local-1: --version timed out after 30 s"
check "the crashing build ($out)" has "$out" "9.1.0 (local-1: --version killed by signal 11"
check "the build without its loader ($out)" \
  has "$out" "9.2.0 (local-1: --version exited 127: qemu-img: error while loading shared libraries: libaio.so.1"
cells=$(safe_cells | wc -l)
check "5 versions' cells, the 3 broken ones' failed ($out)" \
  has "$out" "$((cells * 5 * 2)) cells: "
check "... exactly those ($out)" has "$out" " $((cells * 3 * 2)) failed;"
for type in map-human map-json; do
  check "$type: the map lists the working releases only" \
    python3 -c "import json,sys; m=json.load(open('$work/tree/$type/version-map.json')); sys.exit(sorted(m['version_to_profile']) != ['10.0.2', '7.2.0'])"
done
check "the tree validates" limit "$imgsweep" validate --out "$work/tree"
run limit "$imgsweep" status --db "$work/db"
check "status names the broken version's cells and why" \
  has "$(cat "$work/out")" "binary-unrunnable: version 9.0.0 cannot run on any worker that holds it: local-1: --version timed out after 30 s"
check "no worker process is left" bash -c "! pgrep -f '[w]orker --connect .*$work/bins' >/dev/null"
check "no hanging --version is left" bash -c "! pgrep -f '[s]leep 599[.]0417' >/dev/null"

finish broken_builds_test
