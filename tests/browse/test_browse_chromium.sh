#!/usr/bin/env bash
# vlmn browse in a real browser: a planted run with traces, explanations, simulations and a
# score (explain/simulate/score against the test LLM server), served by `vlmn browse
# --port 0` and driven in headless Chromium through chromedriver's W3C WebDriver HTTP API
# with curl: load the overview, filter the neuron table to visual neurons with the form,
# open a neuron page by clicking its row, check what is on screen (label, p-values,
# modulated images loaded, token heat, explanation), search explanations, sort by score and
# open a scored neuron (score, real vs simulated). Then the same walk over
# `vlmn browse --export DIR` from file://. Expected values come from sqlite3 on the run,
# never from vlmn. First the same explanation/score columns are checked through /api/ with
# curl, so that part runs without a browser; the browser part is skipped (SKIP) when
# chromium, chromedriver or jq (Debian chromium, chromium-driver, jq) is missing.
set -u
. "$(dirname "$0")/../lib.sh"
: "${VLMN_LLM_SERVER:?VLMN_LLM_SERVER not set (libmicrohttpd missing at build time)}"
V=$VLMN_BIN
D=$(scratch)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT
q() { sqlite3 "$D/run/run.sqlite" "$1"; }

# ---- fixture: planted run, 2 visual neurons explained (modulated images), 1 text neuron
# explained + simulated + scored
export PLANTED_KEY=sk-browse-test
"$VLMN_LLM_SERVER" --port-file "$D/llm-port" 2>"$D/llm.log" & pids+=($!)
planted_run "$D" 60
# two planted visual neurons and one planted text neuron (from the planted list, not from vlmn)
vis=$(tr -d ' \t\n' < "$D/m-planted.json" | grep -o '"layer":[0-9]*,"neuron":[0-9]*,"type":"visual"' |
      sed 's/"layer":\([0-9]*\),"neuron":\([0-9]*\).*/\1:\2/' | head -2)
v1=$(head -n1 <<<"$vis"); VL=${v1%:*}; VN=${v1#*:}
check "planted visual neuron $v1 classified visual" test "$(q "SELECT label FROM classification WHERE layer=$VL AND neuron=$VN")" = visual
t1=$(tr -d ' \t\n' < "$D/m-planted.json" | grep -o '"layer":[0-9]*,"neuron":[0-9]*,"type":"text"' |
     sed 's/"layer":\([0-9]*\),"neuron":\([0-9]*\).*/\1:\2/' | head -1)
TL=${t1%:*}; TN=${t1#*:}
check "planted text neuron $t1 classified text" test "$(q "SELECT label FROM classification WHERE layer=$TL AND neuron=$TN")" = text
neurons="$(paste -sd';' <<<"$vis");$t1"
# explain shows ranks 1,5,9,13,17; simulate runs on ranks 3,7,11,15,19 (text neurons only here)
"$V" trace "$D/run" --neurons "$(paste -sd';' <<<"$vis")" --samples top:1,5,9,13,17 -q >/dev/null 2>&1
check "trace visual" test $? -eq 0
"$V" trace "$D/run" --neurons "$t1" --samples top:1-19 -q >/dev/null 2>&1; check "trace text" test $? -eq 0
for i in $(seq 1 200); do [ -s "$D/llm-port" ] && break; sleep 0.02; done
LLM=(--base-url "http://127.0.0.1:$(cat "$D/llm-port")/v1" --api-key-env PLANTED_KEY --concurrency 4)
"$V" explain "$D/run" --neurons "$neurons" --explainer planted "${LLM[@]}" >/dev/null 2>&1; check "explain" test $? -eq 0
"$V" simulate "$D/run" --simulator planted "${LLM[@]}" >/dev/null 2>&1; check "simulate" test $? -eq 0
"$V" score "$D/run" >/dev/null 2>&1; check "score" test $? -eq 0
kill "${pids[0]}" 2>/dev/null
n_vis=$(q "SELECT count(*) FROM classification WHERE label='visual'")
vexpl=$(q "SELECT text FROM explanations WHERE layer=$VL AND neuron=$VN AND status='ok'")
texpl=$(q "SELECT text FROM explanations WHERE layer=$TL AND neuron=$TN AND status='ok'")
tscore=$(q "SELECT printf('%.3f', score) FROM scores WHERE layer=$TL AND neuron=$TN")
tscore_exact=$(q "SELECT printf('%.17g', score) FROM scores WHERE layer=$TL AND neuron=$TN")
vpv=$(q "SELECT printf('%.3f', p_visual) FROM classification WHERE layer=$VL AND neuron=$VN")
n_sim=$(q "SELECT count(*) FROM simulations WHERE layer=$TL AND neuron=$TN AND status='ok'")
check "fixture: visual explanation" test -n "$vexpl"
check "fixture: text explanation" test -n "$texpl"
check "fixture: text score" test -n "$tscore"
check "fixture: 5 simulations" test "$n_sim" -eq 5
# a word of the text explanation to search for (letters only, from the quoted tokens)
word=$(grep -o '[A-Za-z]\{4,\}' <<<"$texpl" | grep -v '^tokens$' | head -n1)
check "fixture: a search word" test -n "$word"
sum_before=$(cat "$D/run/run.sqlite" | cksum)

"$V" browse "$D/run" --port 0 >"$D/url" 2>"$D/browse.err" & pids+=($!)
for i in $(seq 1 300); do [ -s "$D/url" ] && break; sleep 0.05; done
U=$(head -n1 "$D/url"); U=${U%/}
check "server up" test -n "$U"

# ---- explanation / score columns through the API (no browser needed)
api() { curl -s --max-time 10 "$U/api/$1"; }
j=$(api "neurons?label=text&sort=score&order=desc&per=5")
check "api: best-scored text neuron first" grep -q "^{\"total\":[0-9]*,.*\"neurons\":\[{\"layer\":$TL,\"neuron\":$TN," <<<"$j"
near() {  # JSON KEY_PREFIX WANT: the first number after KEY_PREFIX in JSON is WANT within 1e-6
  awk -v g="$(grep -o "$2[-0-9.eE+]*" <<<"$1" | head -n1 | sed "s/^$2//")" -v w="$3" \
    'BEGIN { d = g - w; exit !(g != "" && d < 1e-6 && d > -1e-6) }'
}
check "api: its score" near "$j" "\"layer\":$TL,\"neuron\":$TN,[^}]*\"score\":" "$tscore_exact"
j=$(api "neurons?sort=score&order=asc&per=1")
check "api: ascending score sort puts missing scores last" grep -q "\"neurons\":\[{\"layer\":$TL,\"neuron\":$TN," <<<"$j"
j=$(api "neurons?score=-1")
check "api: score filter keeps only the scored neuron" grep -q "^{\"total\":1,.*\"layer\":$TL,\"neuron\":$TN," <<<"$j"
j=$(api "neurons?q=$word")
check "api: explanation search finds $t1" grep -q "\"layer\":$TL,\"neuron\":$TN,.*\"explanation\":\"the tokens" <<<"$j"
j=$(api "neurons?q=zzqqxyzzy")
check "api: search without a match is empty" grep -q '^{"total":0,' <<<"$j"
j=$(api "neuron/$TL/$TN")
check "api neuron: explanation" grep -q '"explanations":\[{"explainer":"planted",.*"status":"ok","text":"the tokens' <<<"$j"
check "api neuron: score" grep -q "\"scores\":\[{\"explainer\":\"planted\",\"simulator\":\"planted:json\",\"scorer\":\"pearson\",\"kind\":\"text\",\"score\":" <<<"$j"
check "api neuron: score value" near "$j" '"scores":\[{[^}]*"score":' "$tscore_exact"
check "api neuron: 5 simulations with real and sim" test "$(grep -o '"real":\[[-0-9.e+,]*\],"sim":\[[-0-9.e+,null]*\]' <<<"$j" | wc -l)" -eq 5

chrome=$(command -v chromium || command -v chromium-browser || true)
driver=$(command -v chromedriver || true)
if [ -z "$chrome" ] || [ -z "$driver" ] || ! command -v jq >/dev/null; then
  echo "SKIP: chromium, chromedriver or jq not installed (Debian chromium, chromium-driver, jq); browser part not run"
  finish; exit
fi

# ---- WebDriver over curl
"$driver" --port=0 >"$D/driver.log" 2>&1 & pids+=($!)
for i in $(seq 1 200); do grep -q 'started successfully on port' "$D/driver.log" && break; sleep 0.05; done
W="http://127.0.0.1:$(sed -n 's/.*started successfully on port \([0-9]*\).*/\1/p' "$D/driver.log")"
wd() {  # METHOD PATH [JSON]: the response's "value"
  curl -s --max-time 60 -X "$1" "$W$2" -H 'Content-Type: application/json' ${3:+-d "$3"}
}
val() { jq -r '.value // empty | strings'; }                 # a string value
elem() { jq -r '.value["element-6066-11e4-a52e-4f735466cecf"] // empty'; }
profile="$D/profile"
caps="{\"capabilities\":{\"alwaysMatch\":{\"goog:chromeOptions\":{\"binary\":\"$chrome\",\"args\":[\"--headless\",
\"--no-sandbox\",\"--disable-gpu\",\"--disable-quic\",\"--no-first-run\",\"--disable-background-networking\",
\"--disable-component-update\",\"--disable-sync\",\"--allow-file-access-from-files\",\"--window-size=1100,1400\",
\"--user-data-dir=$profile\"]}}}}"
SID=$(wd POST /session "$(tr -d '\n' <<<"$caps")" | sed -n 's/.*"sessionId":"\([^"]*\)".*/\1/p')
check "webdriver session" test -n "$SID"
S="/session/$SID"
go() { wd POST "$S/url" "{\"url\":\"$1\"}" >/dev/null; }
url() { wd GET "$S/url" | val; }
el() { wd POST "$S/element" "{\"using\":\"css selector\",\"value\":\"$1\"}" | elem; }
click() { local e; e=$(el "$1"); [ -n "$e" ] && wd POST "$S/element/$e/click" '{}' | grep -q '^{"value":null}$'; }
text() { local e; e=$(el "$1"); [ -n "$e" ] && wd GET "$S/element/$e/text" | val; }
js() { wd POST "$S/execute/sync" "{\"script\":\"$1\",\"args\":[]}" | val; }
typein() { local e; e=$(el "$1"); [ -n "$e" ] && wd POST "$S/element/$e/clear" '{}' >/dev/null &&
           wd POST "$S/element/$e/value" "{\"text\":\"$2\"}" | grep -q '^{"value":null}$'; }
# label cells of the table rows, one per line; all modulated images loaded
labels() { js "return [...document.querySelectorAll('#neurons td.lab')].map(c => c.textContent).join(' ')" | tr ' ' '\n'; }
# (the images are loading=lazy: make them eager, then wait until they are decoded)
imgs_ok() {
  js "document.querySelectorAll('img.mod').forEach(i => { i.loading = 'eager'; }); return ''" >/dev/null
  local r
  for i in $(seq 1 50); do r=$(imgs_done); [ "${r% *}" = "${r#* }" ] && break; sleep 0.1; done
  echo "$r"
}
imgs_done() { js "const m=[...document.querySelectorAll('img.mod')]; return m.length + ' ' + m.filter(i => i.complete && i.naturalWidth > 0).length"; }

# The neuron page of the visual neuron as seen on screen (both modes).
visual_page() {  # MODE
  check "$1: visual neuron page title" test "$(text '#title')" = "Neuron $VL:$VN visual"
  st=$(text '#stats')
  check "$1: p_v on screen ($vpv)" grep -q "p_v $vpv" <<<"$st"
  check "$1: max_act on screen" grep -q "max_act [0-9]" <<<"$st"
  read -r nm nok <<<"$(imgs_ok)"
  check "$1: modulated images ($nm) all loaded ($nok)" test "${nm:-0}" -ge 5 -a "$nm" = "$nok"
  nheat=$(js "return String(document.querySelectorAll('div.heat span').length)")
  check "$1: token heat spans ($nheat)" test "${nheat:-0}" -gt 10
  green=$(js "return String([...document.querySelectorAll('div.heat span')].filter(s => { const c = s.style.backgroundColor; return c.includes('0, 160, 0') && !c.endsWith(', 0)'); }).length)")
  check "$1: heat spans coloured ($green)" test "${green:-0}" -gt 0
  check "$1: explanation on screen" grep -qF "$vexpl" <<<"$(text '#explanations')"
  check "$1: no score yet, said so" test "$(js "return String(document.body.innerText.includes('none yet for this neuron'))")" = true
}
text_page() {  # MODE
  check "$1: text neuron page title" test "$(text '#title')" = "Neuron $TL:$TN text"
  check "$1: explanation on screen" grep -qF "${texpl:0:30}" <<<"$(text '#explanations')"
  check "$1: score on screen ($tscore)" grep -q "pearson text $tscore" <<<"$(text '#scores')"
  sims=$(text '#simulations')
  check "$1: real vs simulated rows" test "$(grep -c '^real \|^simulated ' <<<"$sims")" -eq 10
  check "$1: simulated tokens shown" test "$(grep -c '^token ' <<<"$sims")" -eq 5
}

# ---- live server
go "$U/"
check "server: overview title" test "$(js 'return document.title')" = "overview - vlmn browse"
check "server: totals" grep -q "4 layers × 64 FFN neurons = 256 neurons; 60 samples" <<<"$(text '#totals')"
check "server: figures" test "$(js "return String(document.querySelectorAll('svg').length)")" -gt 0
click "nav a[href='/neurons?page=1']"; check "server: all-neurons link" test "$(url)" = "$U/neurons?page=1"
check "server: 256 neurons" grep -q '^256 neurons match' <<<"$(text '#count')"
# the filter form: label = visual, apply
click 'select[name=label] option:nth-child(2)'; check "server: pick visual" test $? -eq 0
click '#apply'
check "server: form went to label=visual" grep -q '[?&]label=visual' <<<"$(url)"
check "server: count = $n_vis visual" grep -q "^$n_vis neurons match (label visual)" <<<"$(text '#count')"
check "server: only visual rows" test "$(labels | sort -u)" = visual
check "server: $n_vis rows" test "$(labels | wc -l)" -eq "$n_vis"
check "server: explanation column" grep -qF "$vexpl" <<<"$(text '#neurons')"
click "a.nl[href='/neuron/$VL/$VN']"; check "server: click neuron row" test "$(url)" = "$U/neuron/$VL/$VN"
visual_page server
wd GET "$S/screenshot" | val | base64 -d >"$D/neuron.png" 2>/dev/null
check "server: screenshot is a PNG" bash -c "head -c 8 '$D/neuron.png' | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'"
check "server: screenshot non-trivial" test "$(stat -c %s "$D/neuron.png")" -gt 30000
[ -n "${KEEP_SHOT:-}" ] && cp "$D/neuron.png" "$KEEP_SHOT"
# search explanations, scored first, open the scored neuron
go "$U/neurons"
typein 'input[name=q]' "$word"; check "server: type search word" test $? -eq 0
click 'select[name=sort] option:nth-child(7)'; click 'select[name=order] option:nth-child(2)'; click '#apply'
check "server: search + sort in the URL" grep -q "q=$word.*sort=score&order=desc" <<<"$(url)"
first=$(js "return document.querySelector('#neurons a.nl').getAttribute('href')")
check "server: best-scored match first" test "$first" = "/neuron/$TL/$TN"
row=$(js "return document.querySelector('#neurons a.nl').closest('tr').innerText")
check "server: explanation + score in the row" bash -c 'grep -qF "$1" <<<"$3" && grep -q "$2\$" <<<"$3"' _ "${texpl:0:20}" "$tscore" "$row"
click "a.nl[href='/neuron/$TL/$TN']"
text_page server
# a bad filter typed into the form: a 400 page with the message, in the browser
go "$U/neurons"; typein 'input[name=p_v]' 'abc'; click '#apply'
check "server: bad filter shows the message" grep -q 'p_v: a number in \[0, 1\]' <<<"$(text '#error')"

# ---- static export from file://
"$V" browse "$D/run" --export "$D/site" -q >/dev/null; check "export" test $? -eq 0
F="file://$D/site"
go "$F/index.html"
check "export: overview title" test "$(js 'return document.title')" = "overview - vlmn browse"
click 'nav a.lab-visual'; check "export: visual link" test "$(url)" = "$F/neurons/visual-1.html"
check "export: only visual rows" test "$(labels | sort -u)" = visual
check "export: $n_vis rows" test "$(labels | wc -l)" -eq "$n_vis"
click "a.nl[href='../neuron/$VL/$VN.html']"; check "export: click neuron row" test "$(url)" = "$F/neuron/$VL/$VN.html"
visual_page export
go "$F/neurons/text-1.html"
click "a.nl[href='../neuron/$TL/$TN.html']"; check "export: click text neuron" test "$(url)" = "$F/neuron/$TL/$TN.html"
text_page export
click 'a.sl'; check "export: sample link" grep -q "^$F/sample/[0-9]*\.html$" <<<"$(url)"
check "export: sample page" grep -q '^Sample #' <<<"$(text '#title')"

wd DELETE "$S" >/dev/null
check "run not written" test "$(cat "$D/run/run.sqlite" | cksum)" = "$sum_before"
[ -n "${KEEP_TMP:-}" ] || rm -rf "$D"
finish
