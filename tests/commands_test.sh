#!/usr/bin/env bash
# Commands beyond map, from the command table: `run --commands map,info`
# on the test bed writes info's trees (not bucketed by format, output types
# qemu-img-human and qemu-img-json) beside map's, every info cell equals a
# direct run of its release, the profiles are those the direct runs give,
# map's tree stays byte-identical to a map-only sweep, and adding a command
# later runs only its cells. measure runs once per target format (an axis of
# the table), each cell equal to a direct run; so do map's windows, computed
# from each image's virtual size. A table of the user's own adds a local variant
# with no code change; a bad table or command is refused, naming what.
# Usage: commands_test.sh IMGSWEEP BINARIES TESTDATA
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
manifest="$testdata/manifest.json"
versions=$(ls "$binaries/x86_64")
nversions=$(wc -w <<<"$versions")
nimages=$(safe_cells | wc -l)
v1=$(head -1 <<<"$versions")
sweep() {  # NAME DB [ARGS...]: `run` into $work/tree-NAME with the store $work/DB
  local name="$1" db="$2"; shift 2
  limit "$imgsweep" run --binaries "$binaries" --testdata "$testdata" --manifest "$manifest" \
    --out "$work/tree-$name" --db "$work/$db" "$@" >"$work/$name.out" 2>"$work/$name.err"
}

# 1. map and info in one sweep.
check "run --commands map,info" sweep both db --commands map,info
check "the tree holds map's and info's output types, nothing else" \
  [ "$(ls "$work/tree-both" | tr '\n' ' ')" = "map-human map-json qemu-img-human qemu-img-json " ]
check "info's raw tree is <type>/<version>/<id>.*" \
  [ -f "$work/tree-both/qemu-img-json/7.2.0/qcow2-base.stdout.txt" ]
check "the tree validates" limit "$imgsweep" validate --out "$work/tree-both"

# 2. Every info cell against a direct run of its release, from a dense copy
# of the testdata (the workers ran on their dense staged copies).
cp -r --sparse=never "$testdata" "$work/dense"
root="$(realpath "$work/dense")"
cells=0 mismatches=0
mkdir -p "$work/direct"
# same_as_direct OUT BASE: counts a cell, and a mismatch when the tree's
# BASE.* differ from the direct run's OUT.* and $rc (direct_run's).
same_as_direct() {
  cells=$((cells + 1))
  if ! cmp -s "$1.out" "$2.stdout.txt" || ! cmp -s "$1.err" "$2.stderr.txt" ||
     ! grep -q "\"return_code\": $rc," "$2.meta.json"; then
    mismatches=$((mismatches + 1))
    echo "differs from a direct run: ${2#"$work"/}" >&2
  fi
}
while read -r id path _; do
  for v in $versions; do
    for type in qemu-img-human qemu-img-json; do
      args=(info)
      [ "$type" = qemu-img-json ] && args+=(--output=json)
      out="$work/direct/$type.$v.$id"
      direct_run "$root" "$v" "$out" "${args[@]}" "$root/$path"
      same_as_direct "$out" "$work/tree-both/$type/$v/$id"
    done
  done
done < <(safe_cells)
check "$cells info cells over $nversions versions" [ "$cells" -eq $((nimages * nversions * 2)) ]
check "every info cell equals a direct run ($mismatches of $cells differ)" [ "$mismatches" -eq 0 ]

# 3. Profiles: the versions whose direct runs print the same on every image
# share one, named after the earliest.
for type in qemu-img-human qemu-img-json; do
  expected=$(for v in $versions; do
               echo "$(cat "$work/direct/$type.$v".*.out | sha256sum | cut -c1-16) $v"
             done | sort -V -k2 | awk '{ if (!($1 in p)) { p[$1] = $2 }; print $2 " " p[$1] }')
  got=$(perl -MJSON::PP -0777 -ne '
          my $m = JSON::PP->new->decode($_);
          for my $v (sort { my @a = split /\./, $a; my @b = split /\./, $b;
                            $a[0] <=> $b[0] || $a[1] <=> $b[1] || $a[2] <=> $b[2] }
                     keys %{$m->{version_to_profile}}) {
            (my $p = $m->{version_to_profile}{$v}) =~ s/^profile-//; $p =~ s/-/./g;
            print "$v $p\n";
          }' "$work/tree-both/$type/version-map.json")
  check "$type: profiles are those of the direct runs ($(tr '\n' ',' <<<"$got"))" \
    [ "$got" = "$expected" ]
done
check "qemu-img-json splits where a release added fields (more than one profile)" \
  [ "$(ls "$work/tree-both/qemu-img-json/profiles" | wc -l)" -gt 1 ]
check "info --output=json of 10.0.x and later has the children field, 5.2 does not" \
  grep -q '"children"' "$work/tree-both/qemu-img-json/10.0.2/qcow2-base.stdout.txt" &&
  ! grep -q '"children"' "$work/tree-both/qemu-img-json/5.2.0/qcow2-base.stdout.txt"

# 4. map's tree is the one a map-only sweep writes, and nothing ran twice.
check "a map-only sweep on another store" sweep map db-map
for type in map-human map-json; do
  check "$type is byte-identical to a map-only sweep's" diff -r "$work/tree-map/$type" "$work/tree-both/$type"
done
check "the same sweep again runs nothing" sweep again db --commands map,info
check "... and says so" grep -q " 0 run now" "$work/again.out"

# 5. Adding check later runs only its cells; the others are reused.
check "run --commands map,info,check" sweep more db --commands map,info,check
check "only check's cells ran ($(grep 'run now' "$work/more.out"))" \
  grep -q "$((nimages * nversions * 2)) run now, $((nimages * nversions * 4)) already stored" "$work/more.out"
check "check's trees are written, not bucketed" \
  [ -f "$work/tree-more/check-json/7.2.0/qcow2-base.stdout.txt" ]
run limit "$imgsweep" status --db "$work/db"
check "status counts every output type's cells" has "$(cat "$work/out")" "$((nimages * nversions * 6))"
run limit "$imgsweep" profiles --db "$work/db" --output-type qemu-img-json
check "profiles explains info's splits ($(head -3 "$work/out"))" has "$(cat "$work/out")" "JSON fields added"
run limit "$imgsweep" rerun --db "$work/db" --out "$work/tree-more" --image qcow2-base \
  --binaries "$binaries" --testdata "$testdata"
check "rerun --image exits 0 ($rc: $(tail -2 <<<"$err"))" [ "$rc" -eq 0 ]
check "... and runs that image's cells of every output type, $((nversions * 6)) ($(grep 'run now' "$work/out"))" \
  grep -q " $((nversions * 6)) run now" "$work/out"

# 6. measure: an axis (the target format) makes two cells per image, named
# <id>__<target>, bucketed by the image's format. Added to the same store,
# only its cells run; each equals a direct run of its release.
check "run --commands map,info,check,measure" sweep measure db --commands map,info,check,measure
check "only measure's cells ran, two targets per image ($(grep 'run now' "$work/measure.out"))" \
  grep -q "$((nimages * nversions * 4)) run now, $((nimages * nversions * 6)) already stored" "$work/measure.out"
check "the measure tree validates" limit "$imgsweep" validate --out "$work/tree-measure"
cells=0 mismatches=0
while read -r id path format; do
  for v in $versions; do
    for type in measure-human measure-json; do
      for target in raw qcow2; do
        args=(measure)
        [ "$type" = measure-json ] && args+=(--output=json)
        out="$work/direct/$type.$v.$id.$target"
        direct_run "$root" "$v" "$out" "${args[@]}" -O "$target" "$root/$path"
        same_as_direct "$out" "$work/tree-measure/$type/$format/$v/${id}__$target"
      done
    done
  done
done < <(safe_cells)
check "$cells measure cells, 2 targets x 2 output types x $nversions versions x $nimages images" \
  [ "$cells" -eq $((nimages * nversions * 4)) ]
check "every measure cell equals a direct run ($mismatches of $cells differ)" [ "$mismatches" -eq 0 ]
check "a measure cell's meta names its target" [ "$(perl -MJSON::PP -0777 -ne \
  'print JSON::PP->new->decode($_)->{axes}{target}' \
  "$work/tree-measure/measure-json/qcow2/$v1/qcow2-base__qcow2.meta.json")" = qcow2 ]
first=$(find "$work/tree-measure/measure-json/profiles" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | head -1)
check "the first measure-json profile ($first) holds every image at both targets" \
  [ "$(find "$work/tree-measure/measure-json/profiles/$first" -name '*__raw.stdout.txt' -o \
       -name '*__qcow2.stdout.txt' | wc -l)" -eq $((nimages * 2)) ]
run limit "$imgsweep" rerun --db "$work/db" --out "$work/tree-measure" --image qcow2-base__raw \
  --binaries "$binaries" --testdata "$testdata"
check "rerun --image ID__TARGET runs that row alone, in both measure types ($(grep 'run now' "$work/out"))" \
  grep -q " $((nversions * 2)) run now" "$work/out"

# 6b. Map windows: --start-offset and --max-length computed from each
# image's virtual size (the newest release's `info`), three per image, named
# <id>__<window>. Added to the same store, only their cells run; each equals
# a direct run with the numbers computed here, and map's tree is untouched.
check "run --commands ...,map-window" sweep window db --commands map,info,check,measure,map-window
check "only the window cells ran, three per image ($(grep 'run now' "$work/window.out"))" \
  grep -q "$((nimages * nversions * 6)) run now, $((nimages * nversions * 10)) already stored" "$work/window.out"
check "the window tree validates" limit "$imgsweep" validate --out "$work/tree-window"
check "map's tree is byte-identical to the map,info sweep's" \
  diff -r "$work/tree-both/map-json" "$work/tree-window/map-json"
vlast=$(for v in $versions; do echo "$v"; done | sort -V | tail -1)
cells=0 mismatches=0
while read -r id path format; do
  size=$(cd "$root" && "$binaries/x86_64/$vlast/qemu-img" info --output=json "$root/$path" |
         perl -MJSON::PP -0777 -ne 'print JSON::PP->new->decode($_)->{"virtual-size"}')
  end=$((size - 65536)); [ "$end" -lt 0 ] && end=0
  for window in "mid $((size / 4)) $((size / 2))" "end $end 131072" "past-eof $((size + 65536)) 65536"; do
    read -r name start length <<<"$window"
    for v in $versions; do
      for type in map-window-human map-window-json; do
        args=(map)
        [ "$type" = map-window-json ] && args+=(--output=json)
        out="$work/direct/$type.$v.$id.$name"
        direct_run "$root" "$v" "$out" "${args[@]}" --start-offset "$start" --max-length "$length" "$root/$path"
        same_as_direct "$out" "$work/tree-window/$type/$format/$v/${id}__$name"
      done
    done
  done
done < <(safe_cells)
check "$cells window cells, 3 windows x 2 output types x $nversions versions x $nimages images" \
  [ "$cells" -eq $((nimages * nversions * 6)) ]
check "every window cell equals a direct run ($mismatches of $cells differ)" [ "$mismatches" -eq 0 ]
check "a window cell's meta names its window" [ "$(perl -MJSON::PP -0777 -ne \
  'print JSON::PP->new->decode($_)->{axes}{window}' \
  "$work/tree-window/map-window-json/qcow2/$v1/qcow2-base__past-eof.meta.json")" = past-eof ]
check "map-window-json splits where releases print a past-EOF entry differently" \
  [ "$(ls "$work/tree-window/map-window-json/profiles" | wc -l)" -gt 1 ]
run limit "$imgsweep" coordinator --listen tcp://127.0.0.1:0 --manifest "$manifest" --out "$work/tree-bad" \
  --db "$work/db-bad" --versions "$v1" --commands map-window
check "a coordinator without the testdata refuses windows, exit 2 ($rc)" [ "$rc" -eq 2 ]
check "... saying what sizes them ($err)" has "$err" "give --testdata and --binaries"

# 7. A table of the user's own: a local variant, no code change. The local
# workers get the table too, and run its command lines.
cat >"$work/table.json" <<'TABLE'
{"table_format": 1, "commands": [
  {"name": "info", "layout": "flat", "formats": ["qcow2"], "output_types": [
    {"name": "info-chain", "argv": "{binary} info --backing-chain --output=json {image}"},
    {"name": "info-new", "argv": "{binary} info --output=json {image}", "since": "10.0.0"}]}]}
TABLE
check "run with --command-table and its command" \
  sweep own db-own --command-table "$work/table.json" --commands info
check "the variant's tree is written" [ -d "$work/tree-own/info-chain/profiles" ]
check "... for the table's formats alone (qcow2, no raw image)" \
  [ -f "$work/tree-own/info-chain/$v1/qcow2-base.stdout.txt" ] &&
  [ -z "$(find "$work/tree-own/info-chain/$v1" -name 'raw-*')" ]
direct_run "$root" "$v1" "$work/chain" info --backing-chain --output=json "$root/images/qcow2/base.qcow2"
check "the variant's cell equals a direct run" cmp "$work/chain.out" \
  "$work/tree-own/info-chain/$v1/qcow2-base.stdout.txt"
# "since": releases older than 10.0.0 get an unsupported outcome, not a run.
nqcow2=$(safe_cells | awk '$3 == "qcow2"' | wc -l)
old=0 new=0
for v in $versions; do
  if [ "$(printf '%s\n' "$v" 10.0.0 | sort -V | head -1)" = 10.0.0 ]; then new=$((new + 1)); else old=$((old + 1)); fi
done
check "unsupported cells are counted and not run ($(grep 'run now' "$work/own.out"))" \
  grep -q "$((nqcow2 * old)) unsupported (not run); $((nqcow2 * (nversions + new))) run now" "$work/own.out"
vold=$(for v in $versions; do echo "$v"; done | sort -V | head -1)
vnew=$(for v in $versions; do echo "$v"; done | sort -V | tail -1)
meta="$work/tree-own/info-new/$vold/qcow2-base.meta.json"
check "an unsupported cell's meta: outcome unsupported, return_code null, since 10.0.0" \
  [ "$(perl -MJSON::PP -0777 -ne 'my $m = JSON::PP->new->decode($_);
         print join(" ", $m->{outcome}, defined $m->{return_code} ? "set" : "null", $m->{since})' "$meta")" \
    = "unsupported null 10.0.0" ]
check "... with empty stdout and stderr" [ ! -s "${meta%.meta.json}.stdout.txt" ] && [ ! -s "${meta%.meta.json}.stderr.txt" ]
direct_run "$root" "$vnew" "$work/new" info --output=json "$root/images/qcow2/base.qcow2"
check "a supported release's cell ($vnew) equals a direct run" \
  cmp "$work/new.out" "$work/tree-own/info-new/$vnew/qcow2-base.stdout.txt"
check "the unsupported releases share a profile, named after the first" \
  [ "$(perl -MJSON::PP -0777 -ne 'print JSON::PP->new->decode($_)->{version_to_profile}{"'"$vold"'"}' \
       "$work/tree-own/info-new/version-map.json")" = "profile-${vold//./-}" ]
run limit "$imgsweep" status --db "$work/db-own"
check "status says how many are unsupported" has "$(cat "$work/out")" "$((nqcow2 * old)) of the done cells are unsupported"
check "the same sweep again runs nothing and records nothing twice" \
  sweep own db-own --command-table "$work/table.json" --commands info
check "... ($(grep 'run now' "$work/own.out"))" grep -q " 0 run now" "$work/own.out"

# 7b. A fleet where one worker lacks the user's table: its hello says which
# table it runs, so the coordinator gives it none of those cells (it would
# refuse each), nothing fails, and the worker with the table runs them all.
start_coordinator --listen 'tcp://127.0.0.1:*' --manifest "$manifest" --out "$work/tree-fleet" \
  --db "$work/db-fleet" --binaries "$binaries" --testdata "$testdata" \
  --command-table "$work/table.json" --commands info
start_worker plain --binaries "$binaries" --testdata "$testdata"
start_worker tabled --binaries "$binaries" --testdata "$testdata" --command-table "$work/table.json"
wait "$coord_pid"
rc=$?
check "a fleet with a worker lacking the table completes ($rc: $(tail -3 "$work/coord.out" | tr '\n' ' '))" \
  [ "$rc" -eq 0 ]
check "... with no cell failed" grep -q " 0 failed[,;]" "$work/coord.out"
# info-new's command line is the built-in qemu-img-json's: the plain worker runs it.
check "... the coordinator saying which type that worker does not run" \
  grep -q "worker plain@.* does not run info-chain (not in its command table)" "$work/coord.err"
check "... and its tree equals run's with the same table" \
  diff -r -x '*.meta.json' "$work/tree-own/info-chain" "$work/tree-fleet/info-chain"
stop_all

# 8. Bad input is refused, naming what, and stores nothing.
run limit "$imgsweep" run --binaries "$binaries" --testdata "$testdata" --manifest "$manifest" \
  --out "$work/tree-bad" --db "$work/db-bad" --commands map,nope
check "an unknown command exits 2 ($rc)" [ "$rc" -eq 2 ]
check "... naming it and the table's commands ($err)" \
  has "$err" '"nope" is not a command of the table (map, map-window, info, check, measure)'
printf '{"table_format": 1, "commands": [{"name": "info", "layout": "flat", "output_types": [{"name": "x", "argv": "{binary} info {target} {image}"}]}]}' \
  >"$work/bad.json"
run limit "$imgsweep" run --binaries "$binaries" --testdata "$testdata" --manifest "$manifest" \
  --out "$work/tree-bad" --db "$work/db-bad" --command-table "$work/bad.json" --commands info
check "a table with a bad template exits 2 ($rc)" [ "$rc" -eq 2 ]
check "... naming the file and the template ($err)" \
  has "$err" "bad.json: commands[0].output_types[0].argv"
check "nothing was written for the refused sweeps" [ ! -e "$work/tree-bad" ] && [ ! -e "$work/db-bad" ]

finish commands
