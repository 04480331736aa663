#!/usr/bin/env bash
# The HTML report in a real browser: headless Chromium (a fresh profile,
# background networking off) renders the report of the test bed's sweep.
# The matrix has one cell per image x version of each output type, grouped
# into the test bed's profiles; opening it at #cell=KEY clicks that cell and
# its diff against the previous version shows. A sweep with a failed and a
# timed-out cell marks them. A PNG screenshot is left at SCREENSHOT.
# Usage: report_test.sh IMGSWEEP BINARIES TESTDATA SCREENSHOT
set -uo pipefail
imgsweep="$1" binaries="$2" testdata="$3" screenshot="$4"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/check.sh
. "$here/check.sh"
# shellcheck source=tests/sweep_lib.sh
. "$here/sweep_lib.sh"
manifest="$testdata/manifest.json"
images=$(safe_cells | wc -l)
versions=$(ls "$binaries/x86_64" | wc -l)
browser() {  # URL ARGS...: Chromium, headless, with nothing but this page
  local url="$1"; shift
  limit chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-extensions --no-first-run --user-data-dir="$(mktemp -d "$work/profile.XXXXXX")" \
    "$@" "$url" 2>>"$work/chromium.err"
}

limit "$imgsweep" --quiet run --binaries "$binaries" --testdata "$testdata" \
  --manifest "$manifest" --out "$work/tree" --db "$work/db" >/dev/null
run limit "$imgsweep" report --db "$work/db" --out "$work/report.html"
check "report exits 0 ($rc; $err)" [ "$rc" -eq 0 ]
check "the page fetches nothing: no http(s) address in it" \
  bash -c "! grep -qE '(src|href)=\"?https?:' '$work/report.html'"

url="file://$work/report.html#cell=map-json/7.2.0/raw-empty"
browser "$url" --dump-dom >"$work/dom.html"
check "Chromium rendered the page ($(tail -1 "$work/chromium.err"))" grep -q 'id="matrices"' "$work/dom.html"
for type in map-human map-json; do
  n=$(grep -o "<td class=\"cell [a-z ]*\" data-key=\"$type/" "$work/dom.html" | wc -l)
  check "$type: one cell per image x version ($n)" [ "$n" -eq $((images * versions)) ]
done
profiles=$(grep -o '<th class="profile" colspan="[0-9]*" data-profile="[^"]*"' "$work/dom.html" |
  sed 's/.*colspan="\([0-9]*\)" data-profile="\([^"]*\)"/\2:\1/' | paste -sd' ')
check "profile groups: map-human 1 of 5 versions, map-json 1+1+3 ($profiles)" \
  [ "$profiles" = "profile-5-2-0:5 profile-5-2-0:1 profile-7-2-0:1 profile-10-0-2:3" ]
check "the clicked cell is selected" \
  grep -q 'class="cell exited selected" data-key="map-json/7.2.0/raw-empty"' "$work/dom.html"
check "its key and outcome show" \
  grep -q '<h3 id="selected-key">map-json/7.2.0/raw-empty</h3><div id="selected-state">outcome: exited 0</div>' "$work/dom.html"
check "its diff against 5.2.0 shows the added field" \
  grep -qE '<div class="add">\+ \[\{ "start": 0, "length": [0-9]+, "depth": 0, "present": true' "$work/dom.html"
check "and the removed line" grep -q '<div class="del">- \[{ "start": 0' "$work/dom.html"
check "the header sums up the boundaries" \
  grep -q "map-json: 3 profiles over $versions versions and $images images; boundaries: 5.2.0 → 7.2.0" "$work/dom.html"

mkdir -p "$(dirname "$screenshot")"
rm -f "$screenshot"
browser "$url" --hide-scrollbars --window-size=1400,1300 --screenshot="$screenshot" >/dev/null
check "a screenshot is written ($screenshot)" [ "$(head -c 4 "$screenshot" | tail -c 3)" = PNG ]

# Failed and timed-out cells are marked.
log="$work/executions.log"
counting_binaries "$work/bins" "$log"
cat >"$work/bins/hooks.sh" <<'HOOKS'
case "$version $*" in
  "7.2.0 "*/raw/empty.raw) echo "loader: missing" >&2; exit 127 ;;
  "10.0.2 "*/qcow2/data.qcow2) exec sleep 600 ;;
esac
HOOKS
run limit "$imgsweep" --quiet run --binaries "$work/bins" --testdata "$testdata" \
  --manifest "$manifest" --out "$work/tree2" --db "$work/db2" --timeout 2 --allow-partial
check "the faulty sweep exits 1 ($rc)" [ "$rc" -eq 1 ]
limit "$imgsweep" report --db "$work/db2" --out "$work/report2.html" >/dev/null
browser "file://$work/report2.html" --dump-dom >"$work/dom2.html"
check "failed cells are marked" \
  [ "$(grep -o '<td class="cell failed" data-key="map-[a-z]*/7.2.0/raw-empty"' "$work/dom2.html" | wc -l)" -eq 2 ]
check "timed-out cells are marked" \
  [ "$(grep -o '<td class="cell timeout" data-key="map-[a-z]*/10.0.2/qcow2-data"' "$work/dom2.html" | wc -l)" -eq 2 ]
check "a version without every image is shown apart" grep -q 'data-profile="incomplete"' "$work/dom2.html"
finish report_test
