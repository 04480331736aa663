# shellcheck shell=bash
# debian_mirror: the Debian mirror the host already uses for its own release,
# as apt sees it (or $IMGSWEEP_DEBIAN_MIRROR), without a trailing slash.
# Sourced by the scripts that fetch from Debian's archive; calls `die`.
debian_mirror() {
  if [ -n "${IMGSWEEP_DEBIAN_MIRROR:-}" ]; then echo "${IMGSWEEP_DEBIAN_MIRROR%/}"; return; fi
  local codename uri
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "cannot read VERSION_CODENAME from /etc/os-release"
  uri=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null |
        awk -v c="$codename" '$1 == c { print $2; exit }')
  [ -n "$uri" ] || die "no apt source for '$codename' in the host's apt configuration; set IMGSWEEP_DEBIAN_MIRROR"
  echo "${uri%/}"
}
