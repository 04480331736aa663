#!/usr/bin/env bash
# Checks the binaries tree scripts/fetch-qemu-img built, against the corpus:
# every version answers --version as its SOURCE recorded, and map's JSON on the
# compressed qcow2 shows the field history of real releases:
# no "present" before 6.1, "present" from 6.1, "compressed" from 8.2.
# Then the corpus is varied enough to tell those releases apart and no more:
# the versions group into 1 map-human and 3 map-json sets of identical output.
# Usage: testbed_binaries_test.sh BINARIES TESTDATA
set -uo pipefail
binaries="$1/x86_64"
testdata="$2"
# shellcheck source=tests/check.sh
. "$(dirname "$0")/check.sh"

image="$testdata/images/qcow2/compressed.qcow2"
check "the corpus has a compressed qcow2" test -f "$image"
# The releases the test bed promises: bullseye, bookworm, bookworm-backports, trixie, trixie-backports.
for v in 5.2.0 7.2.0 10.0.2; do check "version $v is in the tree" test -x "$binaries/$v/qemu-img"; done
check "a 10.0.x from trixie is in the tree" bash -c "grep -l '^suite: trixie$' '$binaries'/10.0.*/SOURCE >/dev/null"
check "an 11.1.x is in the tree" bash -c "ls -d '$binaries'/11.1.* >/dev/null"

for dir in "$binaries"/*/; do
  dir="${dir%/}"
  v=$(basename "$dir")
  line=$("$dir/qemu-img" --version 2>&1 | head -n 1)
  check "$v answers --version (got: $line)" has "$line" "qemu-img version "
  check "$v's SOURCE records its --version line" grep -qxF "version_line: $line" "$dir/SOURCE"
  json=$("$dir/qemu-img" map --output=json "$image" 2>&1)
  check "$v maps the compressed qcow2 (got: ${json:0:200})" has "$json" '"data": true'
  major=${v%%.*}
  minor=${v#*.}; minor=${minor%%.*}
  if (( major < 6 || (major == 6 && minor < 1) )); then
    check "$v prints no \"present\"" lacks "$json" '"present"'
  else
    check "$v prints \"present\"" has "$json" '"present": true'
  fi
  if (( major > 8 || (major == 8 && minor >= 2) )); then
    check "$v prints \"compressed\": true" has "$json" '"compressed": true'
  else
    check "$v prints no \"compressed\"" lacks "$json" '"compressed"'
  fi
  # Human output: the contract's header, then exit 1 on compressed clusters.
  human=$("$dir/qemu-img" map "$image" 2>&1); rc=$?
  check "$v human map exits 1 on compressed clusters (rc $rc)" test "$rc" -eq 1
  check "$v human map says why" has "$human" "File contains external, encrypted or compressed clusters."
done

# Every safe-tier image, run as a cell runs: from the testdata root (where
# relative data-file names resolve), with the root's path masked.
safe_paths=$(grep -E '"safety": "safe"' "$testdata/manifest.json" | grep -v '"skip_qemu_img": true' |
             sed 's/.*"path": "\([^"]*\)".*/\1/')
count=$(echo "$safe_paths" | wc -l)
check "the corpus has at least 40 safe-tier images ($count)" test "$count" -ge 40
root=$(cd "$testdata" && pwd -P)
groups() { # map args...: prints one digest per version of all its outputs
  for dir in "$binaries"/*/; do
    ( cd "$root" && for p in $safe_paths; do
        echo "== $p"; "$dir/qemu-img" map "$@" "$root/$p" 2>&1; echo "rc $?"
      done ) | sed "s|$root|\$TESTDATA_ROOT|g" | sha256sum | cut -c1-16
  done | sort -u | wc -l
}
human_groups=$(groups)
json_groups=$(groups --output=json)
check "map-human groups the versions into 1 set (got $human_groups)" test "$human_groups" -eq 1
check "map-json groups the versions into 3 sets (got $json_groups)" test "$json_groups" -eq 3

finish testbed.binaries
