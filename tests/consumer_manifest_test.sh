#!/usr/bin/env bash
# A manifest shaped like the consumers' own (tests/manifest.json of the
# tools that read the tree): a string "version", entries outside the swept
# tier with formats no sweep knows, no sha256 and no file in the checkout,
# two ids whose files hold the same bytes at different paths, a path
# without an extension, fields no schema documents, and a swept entry
# without a sha256. `run` takes it as it is and sweeps the safe tier.
# Usage: consumer_manifest_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"

root="$work/testdata"
mkdir -p "$root/downloaded/shakenfist/copy" "$root/images/qcow2"
cp "$testdata/images/raw/holes.raw" "$root/downloaded/shakenfist/vda"
cp "$testdata/images/raw/holes.raw" "$root/downloaded/shakenfist/copy/vda"
cp "$testdata/images/qcow2/data.qcow2" "$root/images/qcow2/data.qcow2"
vda_sha=$(sha256sum "$root/downloaded/shakenfist/vda" | cut -d' ' -f1)
qcow2_sha=$(sha256sum "$root/images/qcow2/data.qcow2" | cut -d' ' -f1)
cat >"$root/manifest.json" <<JSON
{"\$schema": "./manifest.schema.json", "title": "test images", "version": "1.0.0",
 "description": "the consumers' shapes",
 "images": [
  {"id": "vda", "path": "downloaded/shakenfist/vda", "format": "raw", "safety": "safe",
   "run_in_ci": true, "tags": ["raw"], "generated_by": "scripts/fetch.sh", "sha256": "$vda_sha"},
  {"id": "vda-copy", "path": "downloaded/shakenfist/copy/vda", "format": "raw", "safety": "safe",
   "sha256": "$vda_sha"},
  {"id": "qcow2-data", "path": "images/qcow2/data.qcow2", "format": "qcow2", "safety": "safe",
   "description": "no sha256: the sweep computes it from its copy"},
  {"id": "luks-basic", "path": "generated/luks.img", "format": "luks", "safety": "safe",
   "skip_qemu_img": true, "passphrase": "secret", "data_file": "generated/luks.data"},
  {"id": "boot-iso", "path": "downloaded/boot.iso", "format": "iso", "safety": "malformed",
   "expected_error": "not a disk image"},
  {"id": "cve-vhd", "path": "malicious/cve.vhd", "format": "vhd", "safety": "malicious",
   "cve_references": ["CVE-0000-0000"], "unsafe_quirks_required": ["x"],
   "instar_unsupported": true}
 ]}
JSON
mkdir -p "$work/bins/x86_64"
ln -s "$binaries/x86_64/7.2.0" "$work/bins/x86_64/7.2.0"

run limit "$imgsweep" run --binaries "$work/bins" --testdata "$root" \
  --manifest "$root/manifest.json" --out "$work/tree" --db "$work/db" --workers 1
check "run takes the consumers' manifest (rc $rc: $err)" [ "$rc" -eq 0 ]
check "it says which digest it computed ($err)" \
  has "$err" "manifest: image \"qcow2-data\" has no sha256; using $qcow2_sha"
check "3 images x 1 version x 2 output types ($(cat "$work/out"))" \
  has "$(cat "$work/out")" "6 cells"
for type in map-human map-json; do
  for id in vda vda-copy; do
    check "$type/raw/7.2.0/$id.meta.json" [ -f "$work/tree/$type/raw/7.2.0/$id.meta.json" ]
  done
  check "$type/qcow2/7.2.0/qcow2-data.meta.json records the computed digest" \
    grep -q "\"$qcow2_sha\"" "$work/tree/$type/qcow2/7.2.0/qcow2-data.meta.json"
  check "$type: no bucket for entries outside the tier" \
    bash -c "! ls '$work/tree/$type' | grep -Eq '^(luks|iso|vhd)\$'"
done
check "the same bytes give the same JSON under both ids" \
  cmp "$work/tree/map-json/raw/7.2.0/vda.stdout.txt" "$work/tree/map-json/raw/7.2.0/vda-copy.stdout.txt"
check "human output names each file as given, under \$TESTDATA_ROOT" \
  grep -q '\$TESTDATA_ROOT/downloaded/shakenfist/copy/vda$' "$work/tree/map-human/raw/7.2.0/vda-copy.stdout.txt"

# A coordinator without a copy of the testdata cannot compute a digest: it
# says which entry lacks one.
run limit "$imgsweep" coordinator --listen 'tcp://127.0.0.1:*' --manifest "$root/manifest.json" \
  --out "$work/tree2" --db "$work/db2" --versions 7.2.0
check "coordinator: exit 2 without a digest to use ($rc)" [ "$rc" -eq 2 ]
check "coordinator: names the entry and field ($err)" \
  has "$err" "images[2] (\"qcow2-data\"): field \"sha256\": missing, and this sweep has no copy of the testdata"

finish consumer_manifest_test
