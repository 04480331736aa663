#!/usr/bin/env bash
# The test bed scripts' refusals: what a user sees when something is wrong,
# and that nothing is left half-made. Needs no network: the "archive" is a
# closed loopback port.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/check.sh
. "$repo/tests/check.sh"

export XDG_CACHE_HOME="$work/cache"

run env IMGSWEEP_DEBIAN_MIRROR=http://127.0.0.1:9/debian "$repo/scripts/fetch-qemu-img" \
    --out "$work/bins" --releases bullseye
check "fetch fails without the archive" test "$rc" -eq 1
check "fetch names the mirror it could not reach ($err)" \
  has "$err" "fetch-qemu-img: error: apt-get update against http://127.0.0.1:9/debian failed"
check "fetch leaves no version directory behind" test -z "$(ls -A "$work/bins/x86_64")"
check "fetch leaves no scratch directory behind" test -z "$(ls -d "$work"/bins/.tmp-* 2>/dev/null)"

run "$repo/scripts/fetch-qemu-img" --out "$work/bins" --releases 'Bullseye;rm'
check "fetch refuses a bad release name" has "$err" "fetch-qemu-img: error: bad release name 'Bullseye;rm'"
run "$repo/scripts/fetch-qemu-img" --bogus
check "fetch refuses an unknown argument" has "$err" "unknown argument '--bogus'"

mkdir -p "$work/mine" && echo keep > "$work/mine/notes.txt"
run "$repo/scripts/make-corpus" --out "$work/mine"
check "make-corpus refuses to replace a folder it did not make" test "$rc" -eq 1
check "make-corpus says why" has "$err" "was not made by make-corpus; refusing to replace it"
check "the folder is untouched" test "$(cat "$work/mine/notes.txt")" = keep

run "$repo/scripts/make-corpus" --out "$work/corpus"
check "make-corpus makes a corpus" test -f "$work/corpus/manifest.json"
first=$(grep -o '"sha256": "[0-9a-f]*"' "$work/corpus/manifest.json")
run "$repo/scripts/make-corpus" --out "$work/corpus"
check "make-corpus replaces its own corpus" test "$rc" -eq 0
second=$(grep -o '"sha256": "[0-9a-f]*"' "$work/corpus/manifest.json")
check "a new corpus has new digests (images embed UUIDs and timestamps)" test "$first" != "$second"
check "make-corpus leaves no scratch folder" test -z "$(ls -d "$work"/corpus.new.* 2>/dev/null)"

run "$repo/scripts/make-corpus" --out "$work/corpus/"
check "make-corpus takes a folder with a trailing slash" test "$rc" -eq 0 -a -f "$work/corpus/manifest.json"
check "and leaves no scratch folder inside it" test -z "$(ls -d "$work"/corpus/*.new.* 2>/dev/null)"
run "$repo/scripts/make-corpus" --out /
check "make-corpus refuses / (${err})" has "$err" "make-corpus: error: --out must name a folder other than /"

finish scripts
