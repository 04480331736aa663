#!/usr/bin/env bash
# scripts/fetch-qemu-img against a signed Debian archive made here, served
# from file: so no network is involved. Its qemu-utils packages hold a
# qemu-img script, which is enough to test resolution, assembly, SOURCE,
# caching and the errors: a suite without qemu-utils, and a binary that
# fails --version after assembly, with nothing left half-built.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d)
trap 'gpgconf --homedir "$work/gnupg" --kill all 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=tests/check.sh
. "$repo/tests/check.sh"
die() { echo "fetch_offline_test: setup failed: $*" >&2; exit 1; }

# A package whose /usr/bin/qemu-img is the given script.
make_deb() { # name version script-body
  local root="$work/pkg/$1-$2"
  mkdir -p "$root/DEBIAN" "$root/usr/bin"
  printf 'Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: test <test@example.invalid>\nDescription: test package\n' \
    "$1" "$2" > "$root/DEBIAN/control"
  printf '#!/bin/sh\n%s\n' "$3" > "$root/usr/bin/qemu-img"
  chmod 755 "$root/usr/bin/qemu-img"
  dpkg-deb --root-owner-group -b "$root" "$work/archive/pool/$4/${1}_${2/:/%3a}_amd64.deb" >/dev/null ||
    die "dpkg-deb $1"
}

# A suite with the packages in pool/<suite>, signed with the test key.
make_suite() { # suite
  local dists="$work/archive/dists/$1"
  mkdir -p "$dists/main/binary-amd64"
  (cd "$work/archive" && apt-ftparchive packages "pool/$1") > "$dists/main/binary-amd64/Packages"
  apt-ftparchive -o "APT::FTPArchive::Release::Suite=$1" -o "APT::FTPArchive::Release::Codename=$1" \
    -o APT::FTPArchive::Release::Components=main -o APT::FTPArchive::Release::Architectures=amd64 \
    release "$dists" > "$work/Release" && mv "$work/Release" "$dists/Release"
  gpg --homedir "$work/gnupg" --batch --yes --clearsign -o "$dists/InRelease" "$dists/Release" ||
    die "signing $1"
}

mkdir -p "$work/gnupg" "$work/archive/pool/"{fakeok,fakebroken,fakeempty}
chmod 700 "$work/gnupg"
gpg --homedir "$work/gnupg" --batch --passphrase '' --quick-gen-key 'imgsweep test archive' ed25519 sign never \
  2>/dev/null || die "gpg key"
gpg --homedir "$work/gnupg" --export > "$work/keyring.gpg"
make_deb qemu-utils '1:9.1+ds-1' 'if [ "$1" = --version ]; then echo "qemu-img version 9.1.7 (Debian 1:9.1+ds-1)"; exit 0; fi
echo "ran with $*"' fakeok
make_deb qemu-utils '1:9.2+ds-1' 'echo "qemu-img: boom" >&2; exit 3' fakebroken
make_deb other-tool '1.0-1' 'exit 0' fakeempty
for s in fakeok fakebroken fakeempty; do make_suite "$s"; done

export XDG_CACHE_HOME="$work/cache" IMGSWEEP_DEBIAN_MIRROR="file://$work/archive"
export IMGSWEEP_DEBIAN_KEYRING="$work/keyring.gpg"
bins="$work/bins"

run "$repo/scripts/fetch-qemu-img" --out "$bins" --releases fakeok
check "a release builds from a file: mirror ($err)" test "$rc" -eq 0
check "its directory is the upstream version, not the --version line" test -x "$bins/x86_64/9.1.0/qemu-img"
check "the wrapper runs the release's binary" test "$("$bins/x86_64/9.1.0/qemu-img" map x 2>&1)" = "ran with map x"
check "SOURCE records the --version line" grep -qxF "version_line: qemu-img version 9.1.7 (Debian 1:9.1+ds-1)" "$bins/x86_64/9.1.0/SOURCE"
check "SOURCE records the Debian version" grep -qxF "debian_version: 1:9.1+ds-1" "$bins/x86_64/9.1.0/SOURCE"
check "SOURCE records the suite" grep -qxF "suite: fakeok" "$bins/x86_64/9.1.0/SOURCE"
check "the summary names the version" has "$(cat "$work/out")" "9.1.0    qemu-img version 9.1.7"
ln -s 9.1.0 "$bins/x86_64/9.1.1"
check "a version directory may be a link to another" test "$("$bins/x86_64/9.1.1/qemu-img" info 2>&1)" = "ran with info"
rm "$bins/x86_64/9.1.1"

# Cached: the archive is gone, the release is still served.
mv "$work/archive" "$work/archive.away"
run "$repo/scripts/fetch-qemu-img" --out "$bins" --releases fakeok
check "a cached release needs no archive ($err)" test "$rc" -eq 0
check "and says it was cached" has "$err" "9.1.0 (fakeok) cached"
mv "$work/archive.away" "$work/archive"

run "$repo/scripts/fetch-qemu-img" --out "$bins" --releases fakeempty
check "a suite without qemu-utils fails" test "$rc" -eq 1
check "and says so ($err)" has "$err" "fetch-qemu-img: error: qemu-utils is not in suite 'fakeempty' at file://$work/archive"

run "$repo/scripts/fetch-qemu-img" --out "$bins" --releases fakebroken
check "a binary that fails --version fails the fetch" test "$rc" -eq 1
check "with its output ($err)" has "$err" "9.2.0 (fakebroken): the assembled qemu-img fails --version: qemu-img: boom"
check "leaving no version directory" test ! -e "$bins/x86_64/9.2.0"
check "and no scratch folder" test -z "$(ls -d "$bins"/.tmp-* 2>/dev/null)"
check "the good release is untouched" test -x "$bins/x86_64/9.1.0/qemu-img"

run env IMGSWEEP_DEBIAN_KEYRING="$work/nokeyring.gpg" "$repo/scripts/fetch-qemu-img" --out "$bins" --releases fakeok --refresh
check "a missing keyring is named ($err)" has "$err" "fetch-qemu-img: error: keyring $work/nokeyring.gpg is missing"

finish fetch_offline
