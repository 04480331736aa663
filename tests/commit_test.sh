#!/usr/bin/env bash
# The data commit in a real testdata repository. A sweep writes into
# <repo>/expected-outputs beside another command's tree and a README; then
# `imgsweep commit`:
#   refuses, committing nothing, when other changes are staged, when the
#   tree does not validate, and when the swept folders hold a change the
#   sweep did not make;
#   makes one commit holding exactly the swept types' folders, whose message
#   says what the sweep was, and pushes nothing;
#   commits nothing when the repository already holds the sweep.
# Usage: commit_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
cd "$work" || exit 1
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
finish commit_test
