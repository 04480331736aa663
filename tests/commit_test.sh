#!/usr/bin/env bash
# The data commit in a real testdata repository. A sweep writes into
# <repo>/expected-outputs beside another command's tree and a README; then
# `imgsweep commit`:
#   refuses, committing nothing, when other changes are staged, when the
#   tree does not validate, and when the swept folders hold a change the
#   sweep did not make;
#   makes one commit holding exactly the swept types' folders, whose message
#   says what the sweep was, and pushes nothing;
#   commits nothing when the repository already holds the sweep;
# then a second sweep, with one image's bytes changed: `imgsweep diff`
#   (words and JSON) names that image alone, at every version, and the
#   second data commit's message says the same.
# Usage: commit_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
cd "$work" || exit 1
# The two images in a copy this test may change.
mkdir -p "$work/td/images/raw" "$work/td/images/qcow2"
cp "$testdata/images/raw/empty.raw" "$work/td/images/raw/"
cp "$testdata/images/qcow2/data.qcow2" "$work/td/images/qcow2/"
testdata="$work/td"
export GIT_AUTHOR_NAME=imgsweep-test GIT_AUTHOR_EMAIL=test@example.invalid \
  GIT_COMMITTER_NAME=imgsweep-test GIT_COMMITTER_EMAIL=test@example.invalid
repo="$work/testdata-repo"
git init -q --bare "$work/remote.git"
git init -q "$repo"
git -C "$repo" remote add origin "$work/remote.git"
mkdir -p "$repo/expected-outputs/qemu-img-human/profiles/profile-6-0-0"
echo "another command's" >"$repo/expected-outputs/qemu-img-human/profiles/profile-6-0-0/a.stdout.txt"
echo "the testdata" >"$repo/README.md"
git -C "$repo" add -A && git -C "$repo" commit -qm "testdata" && git -C "$repo" push -q origin HEAD:main
start=$(git -C "$repo" rev-parse HEAD)
commits() { git -C "$repo" rev-list --count "$start..HEAD"; }

two_image_manifest "$work/m.json"
run limit "$imgsweep" --quiet run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$work/m.json" --db "$work/db" --out "$repo/expected-outputs"
check "the sweep writes into the repository ($rc: $err)" [ "$rc" -eq 0 ]
commit() { run limit "$imgsweep" commit --db "$work/db" --repo "$repo"; }

echo "a change of my own" >>"$repo/README.md"
git -C "$repo" add README.md
commit
check "other changes staged: refused, exit 2 ($rc)" [ "$rc" -eq 2 ]
check "other changes staged: it says so ($err)" has "$err" "other changes are staged in $repo"
check "other changes staged: nothing committed" [ "$(commits)" -eq 0 ]
git -C "$repo" reset -q README.md && git -C "$repo" checkout -q README.md

json=$(find "$repo/expected-outputs/map-json" -name '*.stdout.txt' -path '*/raw/*' | head -1)
cp "$json" "$work/kept"
echo "tampered" >>"$json"
commit
check "a tree that does not validate: refused, exit 2 ($rc)" [ "$rc" -eq 2 ]
check "a tree that does not validate: it says why ($err)" has "$err" "does not validate; nothing committed"
check "a tree that does not validate: nothing committed" [ "$(commits)" -eq 0 ]
cp "$work/kept" "$json"

echo "notes" >"$repo/expected-outputs/map-human/notes.txt"
commit
check "a change the sweep did not make: refused, exit 2 ($rc)" [ "$rc" -eq 2 ]
check "a change the sweep did not make: it names the file ($err)" \
  has "$err" "expected-outputs/map-human/notes.txt (not the sweep's)"
check "a change the sweep did not make: nothing committed" [ "$(commits)" -eq 0 ]
rm "$repo/expected-outputs/map-human/notes.txt"

commit
check "the commit: exit 0 ($rc: $err)" [ "$rc" -eq 0 ]
check "the commit: one commit" [ "$(commits)" -eq 1 ]
outside=$(git -C "$repo" show --name-only --format= HEAD | grep -v '^expected-outputs/map-\(human\|json\)/')
check "the commit: only the swept folders ($outside)" [ -z "$outside" ]
check "the commit: the README and the other tree are as they were" \
  git -C "$repo" diff --quiet "$start" HEAD -- README.md expected-outputs/qemu-img-human
message=$(git -C "$repo" log -1 --format=%B)
versions=$(ls "$binaries/x86_64" | wc -l)
check "the message: the sweep ($(echo "$message" | sed -n 3p))" \
  has "$message" "$versions versions ($(ls "$binaries/x86_64" | sort -V | head -1) to $(ls "$binaries/x86_64" | sort -V | tail -1)), 2 images, $((versions * 4)) cells, 0 failed."
check "the message: the sweep id" grep -Eq '^Sweep [0-9a-f]{32}:' <<<"$message"
check "the message: the profiles of each type" grep -q '^map-json: [0-9]* profiles' <<<"$message"
check "the message: the binaries' digests" \
  grep -q "^  7.2.0 $(sha256sum "$binaries/x86_64/7.2.0/bin/qemu-img" | cut -d' ' -f1)\$" <<<"$message"
check "nothing was pushed" [ "$(git -C "$work/remote.git" rev-parse main)" = "$start" ]

commit
check "again: nothing to commit, exit 0 ($rc)" [ "$rc" -eq 0 ]
check "again: it says so" has "$(cat "$work/out")" "nothing to commit"
check "again: no new commit" [ "$(commits)" -eq 1 ]

# A second sweep: raw-empty grows by 1 MiB (the manifest gets its digest).
truncate -s +1M "$testdata/images/raw/empty.raw"
two_image_manifest "$work/m.json"
run limit "$imgsweep" --quiet run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$work/m.json" --db "$work/db" --out "$repo/expected-outputs"
check "the second sweep: exit 0 ($rc: $err)" [ "$rc" -eq 0 ]
run limit "$imgsweep" diff --db "$work/db" --repo "$repo"
diff_words=$(cat "$work/out")
check "diff: exit 0 ($rc: $err)" [ "$rc" -eq 0 ]
check "diff: one image changed, at every version ($diff_words)" \
  has "$diff_words" "expected output changed for 1 image:
    raw-empty: stdout at every version ($versions)"
check "diff: not the image that did not change" lacks "$diff_words" "qcow2-data"
check "diff: no version added or removed" lacks "$diff_words" "versions added"
run limit "$imgsweep" diff --db "$work/db" --repo "$repo" --json
check "diff --json: exit 0 ($rc: $err)" [ "$rc" -eq 0 ]
check "diff --json: raw-empty's stdout at every version, for both types" python3 -c "
import json, os, sys
d = json.load(open('$work/out'))
want = [{'image': 'raw-empty', 'versions': sorted(os.listdir('$binaries/x86_64'), key=lambda v: [int(p) for p in v.split('.')]), 'stdout': True, 'return_code': False}]
sys.exit(sorted(t['type'] for t in d['types']) != ['map-human', 'map-json'] or any(t['changed'] != want or t['versions_added'] or t['boundaries'] for t in d['types']))
"
run limit "$imgsweep" diff --db "$work/db" --out "$repo/expected-outputs" --output-type map-json
check "diff --out the tree just written: no change ($(cat "$work/out"))" \
  has "$(cat "$work/out")" "map-json: no change for the consumers"
commit
check "the second commit: exit 0 ($rc: $err)" [ "$rc" -eq 0 ]
check "the second commit: one more commit" [ "$(commits)" -eq 2 ]
message=$(git -C "$repo" log -1 --format=%B)
check "the second commit's message: what changed for the consumers" \
  has "$message" "raw-empty: stdout at every version ($versions)"
changed=$(git -C "$repo" show --name-only --format= HEAD | grep -c 'qcow2-data')
check "the second commit: no file of the unchanged image ($changed)" [ "$changed" -eq 0 ]
run limit "$imgsweep" diff --db "$work/db" --repo "$repo"
check "diff after the commit: nothing left ($(cat "$work/out"))" \
  has "$(cat "$work/out")" "map-json: no change for the consumers"
run limit "$imgsweep" diff --db "$work/db" --repo "$repo" --rev no-such-rev
check "diff --rev of no commit: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "diff --rev of no commit: it says so ($err)" has "$err" "no-such-rev names no commit"
finish commit_test
