#!/usr/bin/env bash
# explain -> simulate -> score end to end on the planted model against the test server's
# deterministic "planted" LLM (tests/llm/llm_server.c): it explains a neuron by the tokens
# its prompt shows with activation >= 5 and simulates 10 on the tokens an explanation
# names. The planted text neurons must score high; the same explanations shuffled among
# the neurons must score near 0. Also: kill -9 during explain + rerun answers no request
# twice, pictures reach the server as PNG parts, token mismatches are counted, and the
# key never leaves the Authorization header (the server checks every request).
set -u
. "$(dirname "$0")/../lib.sh"
: "${VLMN_LLM_SERVER:?VLMN_LLM_SERVER not set (libmicrohttpd missing at build time)}"
V=$VLMN_BIN
d=$(scratch)
export VLMN_TEST_KEY="sk-planted-TopSecret-42" PLANTED_KEY="sk-planted-TopSecret-42"
"$VLMN_LLM_SERVER" --port-file "$d/port" 2>"$d/server.log" & spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null' EXIT
for i in $(seq 1 300); do [ -s "$d/port" ] && break; sleep 0.02; done
port=$(cat "$d/port"); url="http://127.0.0.1:$port/v1"
stat() { curl -s "http://127.0.0.1:$port/stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
LLM=(--base-url "$url" --api-key-env PLANTED_KEY --concurrency 4)

planted_run "$d" 60
# the planted text neurons (from the planted list, not from vlmn)
tn=$(tr -d ' \t\n' < "$d/m-planted.json" | grep -o '"layer":[0-9]*,"neuron":[0-9]*,"type":"text"' |
     sed 's/"layer":\([0-9]*\),"neuron":\([0-9]*\).*/\1:\2/' | paste -sd';')
check "planted text neurons found" test -n "$tn"
ntext=$(tr ';' '\n' <<<"$tn" | wc -l)
"$V" trace "$d/run" --neurons "$tn" --samples top:1-20 -q >/dev/null 2>&1; check "trace text neurons" test $? -eq 0

# explain before tracing what it needs fails with the command to run, sending nothing
out=$("$V" explain "$d/run" --neurons "label=visual" --explainer planted "${LLM[@]}" 2>&1 >/dev/null)
check "untraced: exit 1" test $? -eq 1
check "untraced: names vlmn trace" grep -q "run \`vlmn trace" <<<"$out"
check "untraced: no request sent" test "$(stat requests)" -eq 0

"$V" explain "$d/run" --neurons "$tn" --explainer planted "${LLM[@]}" > "$d/explain.txt" 2>"$d/explain.err"
check "explain exit 0" test $? -eq 0
check "one line per text neuron" test "$(grep -c $'\tok\t' "$d/explain.txt")" -eq "$ntext"
check "explanations quote tokens" grep -q $'\ttext\tok\tthe tokens "' "$d/explain.txt"
"$V" simulate "$d/run" --simulator planted "${LLM[@]}" >/dev/null 2>"$d/sim.err"; check "simulate exit 0" test $? -eq 0
check "simulate: 5 samples per neuron" grep -q "$((5 * ntext)) samples simulated now, 0 failed" "$d/sim.err"
"$V" score "$d/run" > "$d/score.txt"; check "score exit 0" test $? -eq 0
low=$(sqlite3 "$d/run/run.sqlite" "SELECT COUNT(*) FROM scores WHERE explainer='planted' AND (score IS NULL OR score < 0.8)")
check "every planted text neuron scores >= 0.8" test "$low" -eq 0
n_sc=$(sqlite3 "$d/run/run.sqlite" "SELECT COUNT(*) FROM scores WHERE explainer='planted' AND kind='text'")
check "a score per text neuron" test "$n_sc" -eq "$ntext"

# shuffled explanations: each neuron gets the next neuron's explanation
sqlite3 "$d/run/run.sqlite" "
  CREATE TEMP TABLE e AS SELECT ROW_NUMBER() OVER (ORDER BY layer, neuron) AS i, * FROM explanations WHERE explainer='planted';
  INSERT INTO explanations SELECT a.layer, a.neuron, a.sampling, 'shuffled', a.images, a.kind, a.samples, a.max_act,
    b.text, a.status, a.error, a.prompt_hash, a.settings, a.prompt_tokens, a.completion_tokens, a.attempts, a.cached, a.created
  FROM e a JOIN e b ON b.i = (a.i % (SELECT COUNT(*) FROM e)) + 1;"
"$V" simulate "$d/run" --simulator planted --explainer shuffled "${LLM[@]}" >/dev/null 2>&1
check "simulate shuffled" test $? -eq 0
"$V" score "$d/run" >/dev/null
hi=$(sqlite3 "$d/run/run.sqlite" "SELECT COUNT(*) FROM scores WHERE explainer='shuffled' AND abs(coalesce(score, 0)) > 0.3")
check "shuffled explanations score near 0" test "$hi" -eq 0
mean=$(sqlite3 "$d/run/run.sqlite" "SELECT printf('%.3f %.3f', (SELECT avg(score) FROM scores WHERE explainer='planted'),
  (SELECT avg(coalesce(score,0)) FROM scores WHERE explainer='shuffled'))")
echo "mean score planted / shuffled: $mean"
"$V" stats "$d/run" --table2 > "$d/t2.txt"; check "table2 exit 0" test $? -eq 0
check "table2 layout" grep -q "^Text neurons" "$d/t2.txt"
check "table2 names the explainer" grep -q "explainer planted, simulator planted:json" "$d/t2.txt"
"$V" stats "$d/run" --table2 --json | grep -q '"text_top":{"mean":'; check "table2 json" test $? -eq 0
# the report shows Table 2 and the best-scored explanations, escaped (they come from an LLM)
sqlite3 "$d/run/run.sqlite" "UPDATE explanations SET text = text || ' <script>x</script>' WHERE explainer='shuffled'"
"$V" report "$d/run" -o "$d/report" >/dev/null; check "report exit 0" test $? -eq 0
check "report: explanations section" grep -q '<section id="explanations"><h2>Explanations and their scores' "$d/report/index.html"
check "report: Table 2 text" grep -q "Table 2: explainer planted, simulator planted:json" "$d/report/index.html"
check "report: a planted explanation, quotes escaped" grep -q '<td class="expl">the tokens &quot;' "$d/report/index.html"
check "report: LLM text escaped" grep -q '&lt;script&gt;x&lt;/script&gt;' "$d/report/index.html"
check "report: no live script" sh -c "! grep -q '<script' '$d/report/index.html'"
nrow=$(grep -c '<td class="expl">' "$d/report/index.html")
check "report: at most 10 per type ($nrow rows)" test "$nrow" -ge 1 -a "$nrow" -le 30

# rerun: nothing asked again
r0=$(stat requests)
"$V" explain "$d/run" --neurons "$tn" --explainer planted "${LLM[@]}" >/dev/null 2>&1
"$V" simulate "$d/run" --simulator planted "${LLM[@]}" >/dev/null 2>&1
check "rerun sends no request" test "$(stat requests)" -eq "$r0"

# mismatching token lists are counted, not shifted
"$V" simulate "$d/run" --simulator fbadtok --explainer planted "${LLM[@]}" >/dev/null 2>"$d/bad.err"
check "mismatches reported" grep -q "simulate: .* returned tokens do not match" "$d/bad.err"
mis=$(sqlite3 "$d/run/run.sqlite" "SELECT min(n_mismatch) FROM simulations WHERE simulator='fbadtok'")
check "every fbadtok sample has mismatches" test "$mis" -ge 1

# pictures: visual/multi-modal neurons are explained with PNG parts
vm=$(tr -d ' \t\n' < "$d/m-planted.json" | grep -o '"layer":[0-9]*,"neuron":[0-9]*,"type":"\(visual\|multimodal\)"' |
     sed 's/"layer":\([0-9]*\),"neuron":\([0-9]*\).*/\1:\2/' | head -4 | paste -sd';')
"$V" trace "$d/run" --neurons "$vm" --samples top:1,5,9,13,17 -q >/dev/null 2>&1
i0=$(stat images)
"$V" explain "$d/run" --neurons "$vm" --explainer planted "${LLM[@]}" >/dev/null 2>&1; check "explain visual" test $? -eq 0
check "20 pictures sent" test "$(( $(stat images) - i0 ))" -eq 20
"$V" explain "$d/run" --neurons "$vm" --explainer planted --images raw "${LLM[@]}" >/dev/null 2>&1
check "raw images: a separate explanation" test "$(sqlite3 "$d/run/run.sqlite" "SELECT COUNT(*) FROM explanations WHERE images='raw'")" -eq 4

# kill -9 during explain, then rerun: no answered request is asked twice
many="layer=0-3,random:40:3"
"$V" trace "$d/run" --neurons "$many" --samples top:1,5,9,13,17 -q >/dev/null 2>&1; check "trace 40" test $? -eq 0
"$V" explain "$d/run" --neurons "$many" --kind text --explainer slowplanted --concurrency 2 "${LLM[@]:0:4}" \
  >/dev/null 2>&1 & epid=$!
sleep 1.5; kill -9 $epid; wait $epid 2>/dev/null
part=$(sqlite3 "$d/run/run.sqlite" "SELECT COUNT(*) FROM explanations WHERE explainer='slowplanted'")
check "killed part way" test "$part" -gt 0 -a "$part" -lt 40
dup0=$(stat dup_answered); r0=$(stat requests)
"$V" explain "$d/run" --neurons "$many" --kind text --explainer slowplanted --concurrency 8 "${LLM[@]:0:4}" \
  >/dev/null 2>&1; check "rerun after kill -9" test $? -eq 0
check "all 40 explained" test "$(sqlite3 "$d/run/run.sqlite" "SELECT COUNT(*) FROM explanations WHERE explainer='slowplanted' AND status='ok'")" -eq 40
# the rerun asks at most for the explanations not stored (identical prompts go once); only the (at most 2) requests
# in flight at the kill, answered by the server but never seen by vlmn, are asked again
check "rerun asks only for what is missing" test "$(( $(stat requests) - r0 ))" -le "$((40 - part))"
check "at most the 2 in-flight answers repeated" test "$(( $(stat dup_answered) - dup0 ))" -le 2
check "nothing answered twice before the kill" test "$dup0" -eq 0

check "server saw no protocol violation" test "$(stat violations)" -eq 0
check "key not in the run or the cache" sh -c "! grep -rqa '$VLMN_TEST_KEY' '$d/run'"
check "key not in any output" sh -c "! grep -qa '$VLMN_TEST_KEY' '$d'/*.txt '$d'/*.err"
finish
