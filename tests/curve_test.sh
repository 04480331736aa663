#!/usr/bin/env bash
# An authenticated fleet over tcp on an address of a network namespace the
# test makes: only workers whose CURVE key is allowed join; a worker with an
# unknown key and a plain-text one are turned away and say why; plain text on
# a non-loopback address is refused unless --insecure. The sweep gives the
# tree an unauthenticated local run gives.
# Usage: curve_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
manifest="$testdata/manifest.json"

# A namespace of our own: a veth pair inside it, 10.213.0.1 and .2.
ns="imgsweep-curve-$$"
ip netns add "$ns" || { echo "cannot make a network namespace (needs root)" >&2; exit 1; }
trap 'stop_all; ip netns del "$ns" 2>/dev/null; rm -rf "$work"' EXIT
ip -n "$ns" link set lo up
ip -n "$ns" link add v0 type veth peer name v1
ip -n "$ns" addr add 10.213.0.1/24 dev v0
ip -n "$ns" addr add 10.213.0.2/24 dev v1
ip -n "$ns" link set v0 up
ip -n "$ns" link set v1 up
wrap=(ip netns exec "$ns")
listen='tcp://10.213.0.1:*'

mkdir -p "$work/keys/allowed"
for k in coordinator allowed/w1 allowed/w2 stranger; do
  check "keys generate $k" limit "$imgsweep" keys generate --out "$work/keys/$k" >/dev/null
done
check "the secret key is mode 600" [ "$(stat -c %a "$work/keys/stranger.key")" = 600 ]

# The undisturbed tree, by `run` on loopback.
check "a local run" limit "$imgsweep" --quiet run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$manifest" --out "$work/tree-local" --db "$work/db-local" >/dev/null

# Plain text on a namespace address: refused, or allowed with a warning.
run limit "${wrap[@]}" "$imgsweep" coordinator --listen "$listen" --manifest "$manifest" \
  --out "$work/tree-x" --db "$work/db-x" --binaries "$binaries"
check "plain text off loopback is refused: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "it says how to fix it ($err)" has "$err" \
  "refusing to listen on $listen without CURVE: give --curve-secret and --allow-workers"
check "and creates no store" [ ! -e "$work/db-x" ]
start_coordinator --listen "$listen" --manifest "$manifest" --out "$work/tree-x" \
  --db "$work/db-x" --binaries "$binaries" --insecure
check "--insecure listens on the namespace address ($endpoint)" has "$endpoint" "tcp://10.213.0.1:"
check "--insecure says so at start" grep -q "WITHOUT authentication (--insecure)" "$work/coord.err"
stop_all

# CURVE: the allowed keys join, the others get nothing.
start_coordinator --listen "$listen" --manifest "$manifest" --out "$work/tree" --db "$work/db" \
  --binaries "$binaries" --curve-secret "$work/keys/coordinator.key" \
  --allow-workers "$work/keys/allowed"
check "the CURVE coordinator listens ($endpoint)" has "$endpoint" "tcp://10.213.0.1:"
run limit "${wrap[@]}" "$imgsweep" worker --connect "$endpoint" --binaries "$binaries" \
  --testdata "$testdata" --name stranger --curve-secret "$work/keys/stranger.key" \
  --coordinator-key "$work/keys/coordinator.pub"
check "a worker with an unknown key: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "it is told its key is not allowed ($err)" has "$err" \
  "the handshake with $endpoint failed: the coordinator does not allow this worker's key"
run limit "${wrap[@]}" "$imgsweep" worker --connect "$endpoint" --binaries "$binaries" \
  --testdata "$testdata" --name plain
check "a plain-text worker off loopback refuses to connect: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "it says how to fix it ($err)" has "$err" \
  "refusing to connect to $endpoint in plain text: give --curve-secret and --coordinator-key"
run limit "${wrap[@]}" "$imgsweep" worker --connect "$endpoint" --binaries "$binaries" \
  --testdata "$testdata" --name plain --insecure
check "a plain-text worker with --insecure: exit 2 ($rc)" [ "$rc" -eq 2 ]
# ZeroMQ reports either a mechanism mismatch or a closed handshake; both
# messages name CURVE.
check "it is told the handshake failed over CURVE ($err)" \
  has "$err" "the handshake with $endpoint failed:" && has "$err" "CURVE"
run limit "${wrap[@]}" "$imgsweep" status --connect "$endpoint" --json \
  --curve-secret "$work/keys/coordinator.key" --coordinator-key "$work/keys/coordinator.pub"
check "status with the coordinator's own key (a healthcheck) is answered ($rc: $err)" [ "$rc" -eq 0 ]
run limit "${wrap[@]}" "$imgsweep" status --connect "$endpoint" --json \
  --curve-secret "$work/keys/stranger.key" --coordinator-key "$work/keys/coordinator.pub"
check "status with a key not allowed is not ($rc)" [ "$rc" -ne 0 ]
for w in w1 w2; do
  start_worker "$w" --binaries "$binaries" --testdata "$testdata" --slots 1 \
    --curve-secret "$work/keys/allowed/$w.key" --coordinator-key "$work/keys/coordinator.pub"
done
wait "$coord_pid"; rc=$?
check "the authenticated sweep completes (rc $rc; $(tail -3 "$work/coord.err"))" [ "$rc" -eq 0 ]
summary=$(cat "$work/coord.out")
check "both allowed workers ran cells ($summary)" has "$summary" "w1 ran" && has "$summary" "w2 ran"
check "nobody else did" lacks "$summary" "stranger ran" && lacks "$summary" "plain ran"
# Refusals are logged between the coordinator's rounds: by the end, surely.
check "the coordinator logged the refusal with the address" \
  grep -qF "refused a connection from 10.213.0.1: key $(sed -n 's/^ *public-key = "\(.*\)"$/\1/p' "$work/keys/stranger.pub") is not allowed" \
  "$work/coord.err"
check "the refusals are counted" grep -Eq '[1-9][0-9]* connections refused' "$work/coord.out"
check "the tree equals the local run's" diff -r "$work/tree-local" "$work/tree"

finish curve_test
