#!/usr/bin/env bash
# The tree is a function of the image bytes, the binary and the argv, not of
# how a host's copy lies on disk: `qemu-img map` prints holes. Two workers,
# one on a sparse copy of the testdata and one on a dense copy, each in a
# folder of its own, write the tree one worker on a dense copy writes (each
# runs on its dense staged copy). With --image-layout as-is, cells run on
# the checkout as it lies; one image's cells never mix layouts, and a later
# dense sweep runs the cells whose layout changed.
# Usage: image_layout_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"

cp -r --sparse=always "$testdata" "$work/sparse"
cp -r --sparse=never "$testdata" "$work/dense"
holes() {  # the files under $1 with a hole
  python3 - "$1" <<'PY'
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(d, f)
        if os.path.islink(p): continue
        with open(p, 'rb') as fh:
            size = os.fstat(fh.fileno()).st_size
            if size and os.lseek(fh.fileno(), 0, os.SEEK_HOLE) < size: print(p)
PY
}
check "the sparse copy has files with holes" [ -n "$(holes "$work/sparse")" ]
check "the dense copy has none" [ -z "$(holes "$work/dense")" ]
manifest="$work/dense/manifest.json"

# One worker on the dense copy: the reference.
run limit "$imgsweep" run --binaries "$binaries" --testdata "$work/dense" --manifest "$manifest" \
  --out "$work/tree-one" --db "$work/db-one" --workers 1
check "one worker on a dense copy (rc $rc; $(tail -3 "$work/err"))" [ "$rc" -eq 0 ]
meta=$(find "$work/tree-one/map-json" -path '*/profiles' -prune -o -name '*.meta.json' -print | head -1)
check "meta.json records the layout a cell ran on" grep -q '"image_layout": "dense"' "$meta"

# Two workers, a sparse copy and a dense copy: the same tree.
start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$manifest" --out "$work/tree-fleet" \
  --db "$work/db-fleet" --binaries "$binaries"
start_worker sparse --binaries "$binaries" --testdata "$work/sparse" --slots 1
w1=$!
start_worker dense --binaries "$binaries" --testdata "$work/dense" --slots 1
w2=$!
wait "$coord_pid"; rc=$?
check "the fleet's coordinator exits 0 (rc $rc; $(tail -3 "$work/coord.err"))" [ "$rc" -eq 0 ]
wait "$w1"; wait "$w2"
summary=$(cat "$work/coord.out")
check "both workers ran cells ($summary)" has "$summary" "sparse ran" && has "$summary" "dense ran"
check "the worker on the sparse copy staged a dense one" \
  grep -q "cells run on a dense copy of $(realpath "$work/sparse")" "$work/sparse.err"
check "the fleet's tree equals one worker's on a dense copy" diff -r "$work/tree-one" "$work/tree-fleet"

# As it lies: the sparse copy prints other maps, and says so in meta.json.
run limit "$imgsweep" run --binaries "$binaries" --testdata "$work/sparse" --manifest "$manifest" \
  --out "$work/tree-asis" --db "$work/db-asis" --workers 1 --image-layout as-is
check "as-is on the sparse copy (rc $rc; $(tail -3 "$work/err"))" [ "$rc" -eq 0 ]
check "... prints other maps than the dense copy" bash -c "! diff -rq '$work/tree-one' '$work/tree-asis' >/dev/null"
check "... and records the sparse layouts" bash -c "grep -rq '\"image_layout\": \"sparse:' '$work/tree-asis'"
check "... and the tree validates" limit "$imgsweep" validate --out "$work/tree-asis"
# The same store swept dense: the cells whose layout changed run again.
run limit "$imgsweep" run --binaries "$binaries" --testdata "$work/sparse" --manifest "$manifest" \
  --out "$work/tree-asis" --db "$work/db-asis" --workers 1
check "dense again on the as-is store (rc $rc)" [ "$rc" -eq 0 ]
check "... runs the cells whose layout changed ($err)" has "$err" "stored with other inputs run again"
check "... and writes the dense tree" diff -r "$work/tree-one" "$work/tree-asis"

# As-is with two workers whose copies lie differently: each image's cells
# run on one layout, and the conflicts are reported.
start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$manifest" --out "$work/tree-mixed" \
  --db "$work/db-mixed" --binaries "$binaries" --image-layout as-is
start_worker sparse --binaries "$binaries" --testdata "$work/sparse" --slots 1 --image-layout as-is
w1=$!
start_worker dense --binaries "$binaries" --testdata "$work/dense" --slots 1 --image-layout as-is
w2=$!
wait "$coord_pid"; rc=$?
check "as-is fleet: exit 0 (rc $rc; $(tail -3 "$work/coord.err"))" [ "$rc" -eq 0 ]
wait "$w1"; wait "$w2"
check "as-is fleet: the layout conflicts are reported" grep -q "layout conflict: worker" "$work/coord.out"
check "as-is fleet: no image's cells mix layouts" python3 - "$work/tree-mixed" <<'PY'
import json, os, sys
seen = {}
for d, _, files in os.walk(sys.argv[1]):
    if '/profiles' in d: continue
    for f in files:
        if f.endswith('.meta.json'):
            m = json.load(open(os.path.join(d, f)))
            seen.setdefault(m['image_id'], set()).add(m['image_layout'])
sys.exit(0 if seen and all(len(v) == 1 for v in seen.values()) else 1)
PY

finish image_layout_test
