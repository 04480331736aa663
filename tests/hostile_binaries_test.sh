#!/usr/bin/env bash
# Hostile binaries in a worker's version directories, each a script made
# here that answers --version like a qemu-img and then, on a cell: hangs;
# ignores SIGTERM; exits while a child keeps its stdout open; prints 200 MiB;
# kills itself with SIGSEGV; exits 1 with text on stderr; leaves a child in
# a session of its own. One worker serves
# them all beside a real release, and each cell ends with its own recorded
# outcome within the timeout plus the grace; the worker stays up and ends
# with the sweep.
# Usage: hostile_binaries_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
cd "$work" || exit 1

hostile() {  # VERSION BODY
  mkdir -p "$work/bins/x86_64/$1"
  printf '#!/bin/sh\nif [ "$1" = --version ]; then echo "qemu-img version %s (hostile)"; exit 0; fi\n%s\n' \
    "$1" "$2" >"$work/bins/x86_64/$1/qemu-img"
  chmod +x "$work/bins/x86_64/$1/qemu-img"
}
hostile 1.0.1 'exec sleep 600'
hostile 1.0.2 "trap '' TERM
while :; do sleep 0.05; done"
hostile 1.0.3 'echo early
(sleep 600) &
exit 3'
hostile 1.0.4 'head -c 209715200 /dev/zero'
hostile 1.0.5 'kill -SEGV $$'
hostile 1.0.6 'echo "qemu-img: Could not open: hostile" >&2
exit 1'
# A child that leaves the process group (its own session), lets go of the
# pipes, and would outlive the cell. It notes its pid in a file of its own,
# and the cell waits for that before it exits.
hostile 1.0.7 "note=$work/escaped.\$\$
setsid sh -c 'echo \$\$ >\$0.tmp && mv \$0.tmp \$0; exec sleep 600' \"\$note\" </dev/null >/dev/null 2>&1 &
while [ ! -e \"\$note\" ]; do sleep 0.01; done
echo escaped"
# A real release beside them, served by the same worker.
mkdir -p "$work/bins/x86_64/7.2.0/bin"
ln -s "$binaries/x86_64/7.2.0/bin/qemu-img" "$work/bins/x86_64/7.2.0/bin/qemu-img"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$binaries/x86_64/7.2.0/qemu-img" >"$work/bins/x86_64/7.2.0/qemu-img"
chmod +x "$work/bins/x86_64/7.2.0/qemu-img"

two_image_manifest "$work/m.json"

start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$work/m.json" --out "$work/tree" \
  --db "$work/db" --binaries "$work/bins" --timeout 5 --allow-partial --provenance
start_worker w1 --binaries "$work/bins" --testdata "$testdata" --slots 2
pid_w1=$!
wait "$coord_pid"; rc=$?
check "the sweep ends; failed cells make it exit 1 (rc $rc; $(tail -2 "$work/coord.err"))" [ "$rc" -eq 1 ]
wait "$pid_w1"; rc=$?
check "the worker stayed up and ends with the sweep ($rc; $(tail -2 "$work/w1.err"))" [ "$rc" -eq 0 ]

limit "$imgsweep" status --db "$work/db" --cells >"$work/status"
outcomes() {  # VERSION: the distinct "STATE OUTCOME attempts kinds" of its cells
  awk -v v="$1" '/^map-/ && $1 ~ "/" v "/" { $1 = ""; print substr($0, 2) }' "$work/status" | sort -u | tr '\n' '|'
}
check "a hang times out ($(outcomes 1.0.1))" [ "$(outcomes 1.0.1)" = "done timeout attempts=1|" ]
check "one ignoring TERM times out ($(outcomes 1.0.2))" [ "$(outcomes 1.0.2)" = "done timeout attempts=1|" ]
check "one whose child holds stdout ends with its own exit ($(outcomes 1.0.3))" \
  [ "$(outcomes 1.0.3)" = "done exited attempts=1|" ]
check "200 MiB fails with output-limit on every attempt ($(outcomes 1.0.4))" \
  [ "$(outcomes 1.0.4)" = "failed attempts=3 output-limit,output-limit,output-limit|" ]
check "SIGSEGV is signaled ($(outcomes 1.0.5))" [ "$(outcomes 1.0.5)" = "done signaled attempts=1|" ]
check "exit 1 is a baseline ($(outcomes 1.0.6))" [ "$(outcomes 1.0.6)" = "done exited attempts=1|" ]
check "one whose child escapes its group ends with its own exit ($(outcomes 1.0.7))" \
  [ "$(outcomes 1.0.7)" = "done exited attempts=1|" ]
escaped_alive() {  # the escaped children still running
  local pid alive=""
  while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then alive="$alive $pid"; fi
  done < <(cat "$work"/escaped.* 2>/dev/null)
  echo "$alive"
}
check "every escaped child was noted ($(cat "$work"/escaped.* 2>/dev/null | wc -l))" \
  [ "$(cat "$work"/escaped.* 2>/dev/null | wc -l)" -eq 4 ]
alive=$(escaped_alive)
check "no escaped child outlives its cell (alive:$alive)" [ -z "$alive" ]
# A failed check leaves none of them behind.
# shellcheck disable=SC2086
[ -z "$alive" ] || kill $alive
check "the real release's cells are done ($(outcomes 7.2.0))" [ "$(outcomes 7.2.0)" = "done exited attempts=1|" ]

meta() { cat "$work/tree/map-human/$1.meta.json"; }
within() {  # META-FILE MS: its recorded duration is under MS
  awk -v limit="$2" '/"duration_ms"/ { gsub(/[^0-9.]/, "", $2); found = 1; ok = $2 + 0 < limit }
                     END { exit !(found && ok) }' "$1"
}
for v in 1.0.1 1.0.2; do
  check "$v: return_code null for a timeout" has "$(meta "raw/$v/raw-empty")" '"return_code": null'
  # The 5 s timeout, the 0.5 s grace before SIGKILL, and room for a loaded machine.
  check "$v: ended within timeout + grace" within "$work/tree/map-human/raw/$v/raw-empty.meta.json" 7500
done
check "1.0.3: its exit code" has "$(meta "raw/1.0.3/raw-empty")" '"return_code": 3'
check "1.0.3: what it printed before exiting" [ "$(cat "$work/tree/map-human/raw/1.0.3/raw-empty.stdout.txt")" = early ]
check "1.0.3: ended within the grace, not at the timeout" \
  within "$work/tree/map-human/raw/1.0.3/raw-empty.meta.json" 3000
check "1.0.4: no files for a failed cell" [ ! -e "$work/tree/map-human/raw/1.0.4" ]
check "1.0.5: signal 11" has "$(meta "raw/1.0.5/raw-empty")" '"signal": 11'
check "1.0.6: its stderr is the baseline's" \
  [ "$(cat "$work/tree/map-human/raw/1.0.6/raw-empty.stderr.txt")" = "qemu-img: Could not open: hostile" ]
check "the coordinator names output-limit" grep -q "output-limit: more than 67108864 bytes" "$work/coord.err"
finish hostile_binaries_test
