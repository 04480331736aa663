# shellcheck shell=bash disable=SC2034,SC2154
# Helpers for the sweep tests, sourced after check.sh:
#   limit CMD...            runs CMD under a deadline, so no process outlives a test
#   start_coordinator ARGS  starts `imgsweep coordinator ARGS` (or $serve_cmd, e.g.
#                           rerun; or $coordinator_program, e.g. an entrypoint script)
#                           in the background, reads its "listening on" line
#                           (with a deadline) into $endpoint; its stdout goes to
#                           $work/coord.out, its stderr to $work/coord.err
#   start_worker NAME ARGS  starts `imgsweep worker --connect $endpoint --name NAME ARGS`
#                           (or $worker_program ARGS with IMGSWEEP_CONNECT and IMGSWEEP_NAME)
#   safe_cells              prints "id path format" per safe-tier image of $testdata
#   wrap=(CMD...)           runs the coordinator and workers under CMD (e.g. ip netns exec NS)
#   counting_binaries DIR LOG  a binaries tree of wrappers around $binaries that log
#                           "WORKER VERSION ARGS" per cell to LOG ($IMGSWEEP_TEST_WORKER
#                           names the worker), source DIR/hooks.sh if it exists (with
#                           $version and the args set: a test's fault), then sleep
#                           $IMGSWEEP_TEST_DELAY if set; digests are the real binaries'
#                           (LOG is made empty)
#   cell_count              the test bed's cells: safe images x versions x 2
#   direct_run ROOT VERSION OUT ARGS...  runs VERSION's qemu-img with ARGS from ROOT, as a
#                           worker runs a cell, into OUT.out and OUT.err with ROOT replaced
#                           by $TESTDATA_ROOT; sets $rc to its exit code
#   keys_of_log LOG         the cell key of each logged execution, one per line
#   child_of PID            the process that `timeout` (PID) runs
#   two_image_manifest FILE a manifest of two safe images (raw-empty, qcow2-data)
#   wait_for_lines FILE N SECONDS  waits until FILE (a growing log) has N lines
# Sourcing it makes the scratch folder $work (and $XDG_CACHE_HOME in it, where
# workers stage their dense copies), and at exit stops every process
# it started and removes $work (kept when KEEP_WORK is set, to look at after a failure).
# REQUIRES: $imgsweep and $testdata, before any helper runs.
pids=()
wrap=()
deadline_seconds=300
limit() { timeout -k 5 "$deadline_seconds" "$@"; }
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  pids=()
}
start_coordinator() {
  rm -f "$work/coord.fifo"
  mkfifo "$work/coord.fifo"
  # timeout itself, not a subshell running `limit`, so that $! is what to kill.
  local program=("$imgsweep" "${serve_cmd:-coordinator}")
  [ -n "${coordinator_program:-}" ] && program=("$coordinator_program")
  "${wrap[@]}" timeout -k 5 "$deadline_seconds" "${program[@]}" "$@" \
    >"$work/coord.fifo" 2>"$work/coord.err" &
  coord_pid=$!
  pids+=("$coord_pid")
  exec 3<"$work/coord.fifo"
  local line=""
  : >"$work/coord.out"
  while read -r -t 60 -u 3 line; do
    echo "$line" >>"$work/coord.out"
    [[ "$line" == *"listening on "* ]] && break
  done
  endpoint=${line##* }
  # Keep its stdout drained into a file from here on.
  cat <&3 >>"$work/coord.out" &
  pids+=("$!")
  exec 3<&-
  [[ "$endpoint" == tcp://* ]]
}
start_worker() {
  local name="$1"; shift
  : >"$work/$name.err"  # there before the worker opens it: a test may start reading it at once
  # Cells see only PATH and TMPDIR unless told: the counting binaries read these.
  set -- --child-env IMGSWEEP_TEST_WORKER --child-env IMGSWEEP_TEST_DELAY "$@"
  if [ -n "${worker_program:-}" ]; then  # it takes the endpoint and name from the environment
    IMGSWEEP_CONNECT="$endpoint" IMGSWEEP_NAME="$name" \
      "${wrap[@]}" timeout -k 5 "$deadline_seconds" "$worker_program" "$@" 2>"$work/$name.err" &
  else
    "${wrap[@]}" timeout -k 5 "$deadline_seconds" "$imgsweep" worker --connect "$endpoint" \
      --name "$name" "$@" 2>"$work/$name.err" &
  fi
  pids+=("$!")
}
# The manifest's entries, one per line (make-corpus writes each over two).
safe_cells() {
  awk '/^  \{"id"/ { if (r) print r; r = $0; next } r { r = r $0 } END { if (r) print r }' \
      "$testdata/manifest.json" |
    grep '"safety": "safe"' | grep -v '"skip_qemu_img": true' |
    sed 's/.*"id": "\([^"]*\)", "path": "\([^"]*\)", "format": "\([^"]*\)".*/\1 \2 \3/'
}
# wait_for_line FILE TEXT SECONDS: waits until a line of FILE (a growing log)
# holds TEXT, or SECONDS pass; sets $said to the line (empty on timeout).
wait_for_line() {
  local line
  said=""
  exec 4< <(exec timeout "$3" tail -n +1 -F "$1" 2>/dev/null)
  pids+=("$!")
  while read -r -u 4 line; do
    if [[ "$line" == *"$2"* ]]; then said="$line"; break; fi
  done
  exec 4<&-
}

counting_binaries() {
  local dir="$1" log="$2" v real
  : >"$log"
  for v in $(ls "$binaries/x86_64"); do
    real="$binaries/x86_64/$v"
    mkdir -p "$dir/x86_64/$v/bin"
    ln -s "$real/bin/qemu-img" "$dir/x86_64/$v/bin/qemu-img"
    cat >"$dir/x86_64/$v/qemu-img" <<WRAPPER
#!/bin/sh
if [ "\$1" != --version ]; then
  printf '%s %s %s\n' "\${IMGSWEEP_TEST_WORKER:--}" $v "\$*" >>"$log"
  version=$v
  if [ -f "$dir/hooks.sh" ]; then . "$dir/hooks.sh"; fi
  if [ -n "\${IMGSWEEP_TEST_DELAY:-}" ]; then sleep "\$IMGSWEEP_TEST_DELAY"; fi
fi
exec "$real/qemu-img" "\$@"
WRAPPER
    chmod +x "$dir/x86_64/$v/qemu-img"
  done
}
# Runs a cell's command line directly, as a worker would (see the list above).
direct_run() {
  local root="$1" version="$2" out="$3"; shift 3
  (cd "$root" && "$binaries/x86_64/$version/qemu-img" "$@" >"$out.out" 2>"$out.err" </dev/null)
  rc=$?
  ROOT="$root" perl -pi -e 's/\Q$ENV{ROOT}\E/\$TESTDATA_ROOT/g' "$out.out" "$out.err"
}
# The test bed's cells: safe images x versions x the 2 map output types.
cell_count() { echo $(( $(safe_cells | wc -l) * $(ls "$binaries/x86_64" | wc -l) * 2 )); }
keys_of_log() {
  # The image is the logged path's tail that names a manifest entry: the
  # workers ran it under their staged copy of the testdata.
  awk 'NR == FNR { id[$2] = $1; next }
    { type = ($4 == "--output=json") ? "map-json" : "map-human"
      p = $NF; key = ""
      for (i = 1; i <= length(p); i++) if ((i == 1 || substr(p, i - 1, 1) == "/") && (substr(p, i) in id)) { key = id[substr(p, i)]; break }
      print type "/" $2 "/" key }' <(safe_cells) "$1"
}
child_of() { pgrep -P "$1" | head -1; }
# Writes FILE: a manifest of two safe images of $testdata, a raw and a
# qcow2, with their digests; a small sweep for tests of one behaviour.
two_image_manifest() {
  local raw qcow2
  raw=$(sha256sum "$testdata/images/raw/empty.raw" | cut -d' ' -f1)
  qcow2=$(sha256sum "$testdata/images/qcow2/data.qcow2" | cut -d' ' -f1)
  cat >"$1" <<MANIFEST
{"version": 1, "images": [
 {"id": "raw-empty", "path": "images/raw/empty.raw", "format": "raw", "safety": "safe", "sha256": "$raw"},
 {"id": "qcow2-data", "path": "images/qcow2/data.qcow2", "format": "qcow2", "safety": "safe", "sha256": "$qcow2"}]}
MANIFEST
}
wait_for_lines() {
  local n=0 line
  exec 4< <(exec timeout "$3" tail -n +1 -F "$1" 2>/dev/null)
  pids+=("$!")
  while [ "$n" -lt "$2" ] && read -r -u 4 line; do n=$((n + 1)); done
  exec 4<&-
  [ "$n" -ge "$2" ]
}

work="$(mktemp -d)"
# The workers' dense staged copies of the testdata, one cache per test.
export XDG_CACHE_HOME="$work/cache"
trap 'stop_all; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
