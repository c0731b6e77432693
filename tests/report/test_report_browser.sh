#!/usr/bin/env bash
# Browser check of `vlmn report`: render the report of a small classified run with headless
# Chromium (no network), check that the screenshot is a real picture and that the DOM
# holds the three figure captions and the charts. Skipped when chromium is not installed.
set -u
. "$(dirname "$0")/../lib.sh"
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ]; then
  echo "SKIP: chromium not installed (Debian package 'chromium'); browser check not run"
  exit 0
fi
d=$(scratch)
fixture_bin="$(dirname "$VLMN_BIN")/test_analysis_cli"
VLMN_REPORT_FIXTURE="$d/report" "$fixture_bin" fixture_for_browser_test >"$d/fixture.log" 2>&1
check "fixture report written" test -s "$d/report/index.html"

profile=$(mktemp -d)
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$profile")
url="file://$d/report/index.html"
timeout 120 "$chrome" "${flags[@]}" --screenshot="$d/shot.png" --window-size=1280,2400 "$url" >"$d/chrome.log" 2>&1
check "screenshot exists" test -s "$d/shot.png"
size=$(stat -c %s "$d/shot.png" 2>/dev/null || echo 0)
# A blank 1280x2400 page compresses to a few kB; charts, text and tables take far more.
check "screenshot non-trivial ($size bytes)" test "$size" -gt 60000
check "screenshot is a PNG" bash -c "head -c 8 '$d/shot.png' | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'"

timeout 120 "$chrome" "${flags[@]}" --dump-dom "$url" >"$d/dom.html" 2>"$d/chrome-dom.log"
for cap in "Figure 5." "Figure 6." "Figure 7." "Table 3 (Appendix B.1)." "Most confident neurons of each type" "Provenance"; do
  check "DOM has '$cap'" grep -qF "$cap" "$d/dom.html"
done
nsvg=$(grep -o '<svg' "$d/dom.html" | wc -l)
check "DOM has 9 charts (found $nsvg)" test "$nsvg" -eq 9
check "no script in DOM" bash -c "! grep -qi '<script' '$d/dom.html'"
rm -rf "$profile"
[ -n "${KEEP_SHOT:-}" ] && cp "$d/shot.png" "$KEEP_SHOT"
finish
