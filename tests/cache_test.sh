#!/usr/bin/env bash
# Incremental sweeps, like a build cache: a stored outcome is reused while
# its cell's inputs (binary sha256, image sha256, output type, argv,
# timeout) are unchanged. The qemu-img binaries are wrapped to log every
# execution, so each step counts exactly what ran:
#   unchanged         nothing runs, no worker starts, no file of the tree is rewritten
#   a version added   only its cells run
#   an image changed  only its cells run (a hook fails two of them: see below)
#   failures          an infrastructure failure is never reused: the next run retries it
#   a binary changed  (other bytes under a version name) only its cells run
#   --force           every cell runs
#   a version removed nothing runs; its captures leave the tree, nothing beside the types does
# Usage: cache_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" real_binaries="$2" testdata_in="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
binaries="$real_binaries" testdata="$testdata_in"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"

# A testdata copy whose images this test may change.
cp -a "$testdata_in" "$work/testdata"
testdata="$work/testdata"
images=$(safe_cells | wc -l)
log="$work/executions.log"

# The real versions, and later one more: 99.0.0, 7.2.0's build under another name.
mkdir -p "$work/real/x86_64"
for v in $(ls "$real_binaries/x86_64"); do ln -s "$real_binaries/x86_64/$v" "$work/real/x86_64/$v"; done
versions=$(ls "$work/real/x86_64" | wc -l)
binaries="$work/real" counting_binaries "$work/bins" "$log"

sweep() {  # runs `imgsweep run` over $work/bins; $rc, $err, $out; $ran = executions
  : >"$log"
  run limit "$imgsweep" run --binaries "$work/bins" --testdata "$testdata" \
    --manifest "$testdata/manifest.json" --db "$work/db" --out "$work/tree" "$@"
  out=$(cat "$work/out")
  ran=$(wc -l <"$log")
}
mtimes() { find "$work/tree" -type f -printf '%p %T@\n' | sort; }

sweep
all=$((images * versions * 2))
check "the first sweep runs every cell ($ran of $all)" [ "$ran" -eq "$all" ]
check "the first sweep exits 0 ($rc)" [ "$rc" -eq 0 ]

mtimes >"$work/before"
sweep
check "unchanged: nothing runs ($ran executions)" [ "$ran" -eq 0 ]
check "unchanged: says so ($out)" has "$out" "0 run now, $all already stored"
check "unchanged: no worker starts" lacks "$err" "worker local-"
check "unchanged: no file of the tree is rewritten" diff <(mtimes) "$work/before"

ln -s "$real_binaries/x86_64/7.2.0" "$work/real/x86_64/99.0.0"
rm -rf "$work/bins" && binaries="$work/real" counting_binaries "$work/bins" "$log"
sweep
check "a version added: only its cells run ($ran of $((images * 2)))" [ "$ran" -eq $((images * 2)) ]
check "a version added: every execution is 99.0.0's" \
  [ "$(awk '$2 != "99.0.0"' "$log" | wc -l)" -eq 0 ]
check "a version added: the sweep says what changed ($err)" has "$err" "1 version added: 99.0.0"
versions=$((versions + 1))

# raw-empty gets other bytes (and the manifest its new sha256); while the
# marker exists, 7.2.0 cannot run on it (exit 127: an infrastructure failure).
image="$testdata/images/raw/empty.raw"
truncate -s +1M "$image"
new_sha=$(sha256sum "$image" | cut -d' ' -f1)
sed -i "/\"id\": \"raw-empty\"/,/sha256/ s/\"sha256\": \"[0-9a-f]*\"/\"sha256\": \"$new_sha\"/" \
  "$testdata/manifest.json"
cat >"$work/bins/hooks.sh" <<HOOK
if [ -e "$work/marker" ] && [ "\$version" = 7.2.0 ]; then
  case "\$*" in *images/raw/empty.raw*) echo "cannot run" >&2; exit 127 ;; esac
fi
HOOK
touch "$work/marker"
sweep
others=$(grep -vc 'images/raw/empty.raw' "$log")
check "an image changed: only its cells run ($others others)" [ "$others" -eq 0 ]
# Every version's 2 cells, and 7.2.0's 2 cells twice more (3 attempts each).
check "an image changed: its cells ran, 7.2.0's 3 times ($ran)" [ "$ran" -eq $((versions * 2 + 4)) ]
check "an image changed: the failures fail the run ($rc)" [ "$rc" -eq 1 ]
check "an image changed: the sweep says what changed ($err)" has "$err" "1 image changed: raw-empty"

rm "$work/marker"
sweep
check "failures are never reused: the next run retries exactly them ($ran)" [ "$ran" -eq 2 ]
check "failures are never reused: both are 7.2.0's on raw-empty" \
  [ "$(grep -c '^- 7.2.0 .*images/raw/empty.raw' "$log")" -eq 2 ]
check "failures are never reused: the run succeeds ($rc)" [ "$rc" -eq 0 ]

# 99.0.0's build is now 10.0.2's bytes: its stored cells ran other bytes.
ln -sfn "$real_binaries/x86_64/10.0.2/bin/qemu-img" "$work/bins/x86_64/99.0.0/bin/qemu-img"
sweep
check "a binary changed: only its cells run ($ran of $((images * 2)))" [ "$ran" -eq $((images * 2)) ]
check "a binary changed: every execution is 99.0.0's" \
  [ "$(awk '$2 != "99.0.0"' "$log" | wc -l)" -eq 0 ]

sweep --force
all=$((images * versions * 2))
check "--force: every cell runs ($ran of $all)" [ "$ran" -eq "$all" ]
check "--force: the tree is valid" limit "$imgsweep" validate --out "$work/tree"

# A version removed from the binaries tree: nothing runs, its captures leave
# the tree, and what lies beside the swept types (another command's tree,
# the testdata's README) is left alone.
echo "the testdata's own" >"$work/tree/README.md"
mkdir -p "$work/tree/qemu-img-human/profiles/profile-6-0-0"
echo "another command's" >"$work/tree/qemu-img-human/profiles/profile-6-0-0/a.stdout.txt"
rm -r "$work/bins/x86_64/99.0.0"
sweep
check "a version removed: nothing runs ($ran)" [ "$ran" -eq 0 ]
check "a version removed: it exits 0 ($rc)" [ "$rc" -eq 0 ]
check "a version removed: its captures left the tree ($(find "$work/tree" -name 99.0.0 | head -1))" \
  [ -z "$(find "$work/tree" -path '*99.0.0*' -o -path '*99-0-0*')" ]
check "a version removed: no version map names it" [ -z "$(grep -l 99.0.0 "$work/tree"/map-*/version-map.json)" ]
check "a version removed: the README is untouched" [ "$(cat "$work/tree/README.md")" = "the testdata's own" ]
check "a version removed: another command's tree is untouched" \
  [ "$(cat "$work/tree/qemu-img-human/profiles/profile-6-0-0/a.stdout.txt")" = "another command's" ]

finish "cache"
