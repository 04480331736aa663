# shellcheck shell=bash disable=SC2034,SC2154
# Helpers for the shell tests, sourced by them:
#   check WHAT CMD...  counts CMD's success or failure; prints "FAIL: WHAT" on failure
#   run CMD...         runs CMD with stdout to $work/out; sets $rc and $err (its stderr)
#   has TEXT PART / lacks TEXT PART
#   finish NAME        prints "NAME: N passed, N failed"; exits non-zero on a failure
# REQUIRES: $work names a scratch folder before `run` is used.
passed=0
failed=0
check() {
  local what="$1"; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what" >&2; fi
}
run() { "$@" >"$work/out" 2>"$work/err"; rc=$?; err=$(cat "$work/err"); }
has() { [[ "$1" == *"$2"* ]]; }
lacks() { [[ "$1" != *"$2"* ]]; }
finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
