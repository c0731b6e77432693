#!/usr/bin/env bash
# Detection and fuzzing scorers end to end on the planted model against the test server's
# deterministic "planted" LLM (tests/llm/llm_server.c): it explains a neuron by the tokens
# its prompt shows with activation >= 5 (quoted), calls a sample active iff it contains a
# quoted token, and highlights matching iff every highlighted token is quoted. True
# explanations of the planted text neurons must get AUROC near 1, the same explanations
# shuffled among the neurons near 0.5 (mean over the neurons). Also: untraced negatives fail
# with the `vlmn trace` command and send nothing, logprob mode, a 500 is retried, a rerun
# asks nothing again, kill -9 + rerun resumes, visual neurons get their raw images in
# detection and are skipped by fuzzing, stats --table2 shows both scorers beside Pearson,
# and the key is never stored.
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
model_count() { curl -s "http://127.0.0.1:$port/stats" | sed -n "s/.*\"by_model\":{[^}]*\"$1\":\([0-9]*\).*/\1/p"; }
LLM=(--base-url "$url" --api-key-env PLANTED_KEY --concurrency 4)
q() { sqlite3 "$d/run/run.sqlite" "$1"; }

planted_run "$d" 80
tn=$(tr -d ' \t\n' < "$d/m-planted.json" | grep -o '"layer":[0-9]*,"neuron":[0-9]*,"type":"text"' |
     sed 's/"layer":\([0-9]*\),"neuron":\([0-9]*\).*/\1:\2/' | paste -sd';')
check "planted text neurons found" test -n "$tn"
ntext=$(tr ';' '\n' <<<"$tn" | wc -l)
"$V" trace "$d/run" --neurons "$tn" --samples top:1-20 -q >/dev/null 2>&1; check "trace top" test $? -eq 0
"$V" explain "$d/run" --neurons "$tn" --explainer planted "${LLM[@]}" >/dev/null 2>&1; check "explain" test $? -eq 0

# negatives not traced yet: fails naming the command, sends nothing
r0=$(stat requests)
out=$("$V" score "$d/run" --scorer detection --scorer-model planted "${LLM[@]}" 2>&1 >/dev/null)
check "untraced: exit 1" test $? -eq 1
check "untraced: names the trace command" grep -q "run \`vlmn trace $d/run --neurons '[0-9:;]*' --samples random:10:1\`" <<<"$out"
check "untraced: no request sent" test "$(stat requests)" -eq "$r0"
"$V" trace "$d/run" --neurons "$tn" --samples random:10:1 -q >/dev/null 2>&1; check "trace random" test $? -eq 0

"$V" score "$d/run" --scorer detection --scorer-model planted "${LLM[@]}" 2>"$d/det.err"
check "detection exit 0" test $? -eq 0
check "detection: a row per text neuron" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='detection' AND explainer='planted'")" -eq "$ntext"
# 5 positives; as many negatives when the 10 random samples hold 5 the neuron does not fire on (else noted)
check "detection: 5 positives, negatives up to 5" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='detection' AND n_pos=5 AND n_neg BETWEEN 3 AND 5 AND json_array_length(detail, '\$.examples') = n_pos + n_neg")" -eq "$ntext"
check "detection: fewer negatives are noted" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='detection' AND n_neg < 5 AND note NOT LIKE '%inactive random samples for 5 top samples%'")" -eq 0
# (a neuron whose word is in fewer than 19 samples has an inactive sample among its ranks 3..19: AUROC 0.9)
check "detection: true explanations AUROC >= 0.85" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='detection' AND explainer='planted' AND coalesce(score,0) < 0.85")" -eq 0
check "detection: most are perfect" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='detection' AND explainer='planted' AND score = 1")" -ge "$((ntext / 2))"
check "detection: accuracy >= 0.85" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='detection' AND explainer='planted' AND accuracy < 0.85")" -eq 0

"$V" score "$d/run" --scorer fuzzing --scorer-model planted "${LLM[@]}" 2>"$d/fuzz.err"
check "fuzzing exit 0" test $? -eq 0
check "fuzzing: a row per text neuron" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='fuzzing' AND explainer='planted' AND n_pos = n_neg AND n_pos >= 3")" -eq "$ntext"
check "fuzzing: samples without active text are noted" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='fuzzing' AND n_pos < 5 AND note NOT LIKE '%top samples without active text tokens%'")" -eq 0
check "fuzzing: true explanations AUROC >= 0.9" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='fuzzing' AND explainer='planted' AND coalesce(score,0) < 0.9")" -eq 0

# shuffled explanations: each neuron gets the next neuron's explanation
q "CREATE TEMP TABLE e AS SELECT ROW_NUMBER() OVER (ORDER BY layer, neuron) AS i, * FROM explanations WHERE explainer='planted';
  INSERT INTO explanations SELECT a.layer, a.neuron, a.sampling, 'shuffled', a.images, a.kind, a.samples, a.max_act,
    b.text, a.status, a.error, a.prompt_hash, a.settings, a.prompt_tokens, a.completion_tokens, a.attempts, a.cached, a.created
  FROM e a JOIN e b ON b.i = (a.i % (SELECT COUNT(*) FROM e)) + 1;"
for s in detection fuzzing; do
  "$V" score "$d/run" --scorer $s --scorer-model planted --explainer shuffled "${LLM[@]}" 2>/dev/null
  check "$s shuffled exit 0" test $? -eq 0
  m=$(q "SELECT avg(score) FROM scores WHERE scorer='$s' AND explainer='shuffled'")
  mt=$(q "SELECT avg(score) FROM scores WHERE scorer='$s' AND explainer='planted'")
  echo "$s: mean AUROC planted $mt, shuffled $m"
  check "$s: shuffled mean AUROC near 0.5" awk -v m="$m" 'BEGIN { exit !(m > 0.35 && m < 0.65) }'
done

# logprob mode: P(1) from top_logprobs (0.9 / 0.1 from the server)
"$V" score "$d/run" --scorer detection --scorer-model planted --mode logprob --explainer planted --shuffle-seed 2 \
  --no-cache "${LLM[@]}" 2>/dev/null
check "logprob: exit 0" test $? -eq 0
# the seed makes new requests; the same model name would find them scored: a row per neuron exists already
check "logprob: no new rows for a scored model" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='detection' AND explainer='planted'")" -eq "$ntext"
q "DELETE FROM scores WHERE scorer='detection' AND explainer='planted'"
"$V" score "$d/run" --scorer detection --scorer-model planted --mode logprob --explainer planted "${LLM[@]}" 2>/dev/null
check "logprob: rescored" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='detection' AND explainer='planted' AND score >= 0.85 AND detail LIKE '%\"mode\":\"logprob\"%' AND detail LIKE '%\"p\":0.9%'")" -eq "$ntext"

# a 500 on the first try of every request is retried (model f500 answers i % 2 after it; plain mode)
"$V" score "$d/run" --scorer detection --scorer-model f500 --mode plain --explainer planted "${LLM[@]}" --max-attempts 3 2>"$d/f500.err"
check "f500: exit 0" test $? -eq 0
check "f500: every request tried twice" test "$(model_count f500)" -eq "$((2 * ntext))"
check "f500: rows written" test "$(q "SELECT COUNT(*) FROM scores WHERE simulator='f500' AND score IS NOT NULL AND detail LIKE '{\"mode\":\"plain\"%'")" -eq "$ntext"
# always500: fails, listed with its reason, no row (a rerun asks again)
"$V" score "$d/run" --scorer fuzzing --scorer-model always500 --explainer planted "${LLM[@]}" --max-attempts 2 2>"$d/a500.err"
check "always500: exit 1" test $? -eq 1
check "always500: failures listed" test "$(grep -c "fuzzing: .* failed: " "$d/a500.err")" -eq "$ntext"
check "always500: no rows" test "$(q "SELECT COUNT(*) FROM scores WHERE simulator='always500'")" -eq 0

# rerun: nothing asked again
r0=$(stat requests)
for s in detection fuzzing; do "$V" score "$d/run" --scorer $s --scorer-model planted "${LLM[@]}" 2>/dev/null; done
check "rerun sends no request" test "$(stat requests)" -eq "$r0"

# kill -9 part way (slowplanted answers after 200 ms, one in flight), then rerun: rows were committed one
# by one, and the rerun asks only for the explanations without a row (at most the one in flight repeated)
"$V" score "$d/run" --scorer detection --scorer-model slowplanted "${LLM[@]}" --concurrency 1 >/dev/null 2>&1 & kpid=$!
for i in $(seq 1 400); do
  [ "$(q "SELECT COUNT(*) FROM scores WHERE simulator='slowplanted'" 2>/dev/null || echo 0)" -gt 0 ] && break; sleep 0.05
done
kill -9 $kpid; wait $kpid 2>/dev/null
part=$(q "SELECT COUNT(*) FROM scores WHERE simulator='slowplanted'")
check "killed part way" test "$part" -gt 0 -a "$part" -lt "$((2 * ntext))"
r0=$(stat requests); dup0=$(stat dup_answered)
"$V" score "$d/run" --scorer detection --scorer-model slowplanted "${LLM[@]}" 2>/dev/null; check "rerun after kill -9" test $? -eq 0
check "all scored after the rerun" test "$(q "SELECT COUNT(*) FROM scores WHERE simulator='slowplanted'")" -eq "$((2 * ntext))"
check "rerun asks only for what is missing" test "$(( $(stat requests) - r0 ))" -le "$((2 * ntext - part))"
check "at most the one in flight repeated" test "$(( $(stat dup_answered) - dup0 ))" -le 1

# visual neurons: detection sends the raw images, fuzzing skips them with a note
vm=$(tr -d ' \t\n' < "$d/m-planted.json" | grep -o '"layer":[0-9]*,"neuron":[0-9]*,"type":"visual"' |
     sed 's/"layer":\([0-9]*\),"neuron":\([0-9]*\).*/\1:\2/' | head -2 | paste -sd';')
"$V" trace "$d/run" --neurons "$vm" --samples top:1-20 -q >/dev/null 2>&1
"$V" trace "$d/run" --neurons "$vm" --samples random:10:1 -q >/dev/null 2>&1
"$V" explain "$d/run" --neurons "$vm" --explainer vplanted "${LLM[@]}" >/dev/null 2>&1; check "explain visual" test $? -eq 0
i0=$(stat images)
"$V" score "$d/run" --scorer detection --scorer-model planted --explainer vplanted "${LLM[@]}" 2>/dev/null
check "visual detection exit 0" test $? -eq 0
nimg=$(q "SELECT sum(n_pos + n_neg) FROM scores WHERE scorer='detection' AND explainer='vplanted'")
check "visual detection: one image per example" test "$(( $(stat images) - i0 ))" -eq "$nimg"
"$V" score "$d/run" --scorer fuzzing --scorer-model planted --explainer vplanted "${LLM[@]}" 2>"$d/vf.err"
check "visual fuzzing: skipped with a note" grep -q "fuzzing: 2 visual neurons skipped" "$d/vf.err"
check "visual fuzzing: no rows" test "$(q "SELECT COUNT(*) FROM scores WHERE scorer='fuzzing' AND explainer='vplanted'")" -eq 0

# Table 2 beside Pearson
"$V" simulate "$d/run" --simulator planted --explainer planted "${LLM[@]}" >/dev/null 2>&1
"$V" score "$d/run" >/dev/null; check "pearson still the default" test $? -eq 0
"$V" stats "$d/run" --table2 > "$d/t2.txt"; check "table2 exit 0" test $? -eq 0
check "table2: pearson" grep -q "explainer planted, simulator planted:json" "$d/t2.txt"
check "table2: detection" grep -q "Table 2, detection scorer: explainer planted, scorer model planted" "$d/t2.txt"
check "table2: fuzzing" grep -q "Table 2, fuzzing scorer: explainer planted, scorer model planted" "$d/t2.txt"
check "table2: accuracy" grep -q "acc=1.000" "$d/t2.txt"
"$V" stats "$d/run" --table2 --json | grep -q '"scorer":"fuzzing"'; check "table2 json" test $? -eq 0
"$V" score "$d/run" --scorer pearson --scorer-model x >/dev/null 2>&1; check "pearson refuses a model" test $? -eq 2
"$V" score "$d/run" --scorer bogus --scorer-model x >/dev/null 2>&1; check "unknown scorer: usage error" test $? -eq 2
"$V" score "$d/run" --scorer fuzzing >/dev/null 2>&1; check "no scorer model: usage error" test $? -eq 2
"$V" score "$d/run" --scorer fuzzing --scorer-model x --mode weird >/dev/null 2>&1; check "bad mode: usage error" test $? -eq 2
out=$("$V" score "$d/run" --scorer detection --scorer-model x --active-frac 2 "${LLM[@]}" 2>&1)
check "bad --active-frac: one-line error" test $? -ne 0 -a "$(grep -c 'active-frac 2' <<<"$out")" -eq 1
out=$("$V" score "$d/run" --scorer detection --scorer-model x --negatives top:1-5 "${LLM[@]}" 2>&1)
check "negatives must be random" grep -q "negatives top:1-5: must be random:K:SEED" <<<"$out"

# many untraced neurons: the command names a CSV of them that `vlmn trace` takes as it is
q "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 99)
   INSERT INTO explanations SELECT i / 25, i % 25, 'top', 'fake', 'none', 'text', '[]', 1, ' the tokens \" x\"', 'ok',
   NULL, 'h', '{}', NULL, NULL, 1, 0, 't' FROM k"
out=$("$V" score "$d/run" --scorer fuzzing --scorer-model x --explainer fake "${LLM[@]}" 2>&1)
check "many untraced: exit 1" test $? -eq 1
check "many untraced: names the neuron file" grep -q "\-\-neurons 'file:$d/run/untraced-neurons.csv' --samples top:3,7,11,15,19" <<<"$out"
"$V" trace "$d/run" --neurons "file:$d/run/untraced-neurons.csv" --samples top:3,7,11,15,19 -q >/dev/null 2>&1
check "the file is a trace SPEC" test $? -eq 0
"$V" score "$d/run" --scorer fuzzing --scorer-model x --explainer fake "${LLM[@]}" >/dev/null 2>&1
check "then every fake explanation is scored" test "$(q "SELECT COUNT(*) FROM scores WHERE explainer='fake' AND scorer='fuzzing'")" -eq 100

check "server saw no protocol violation" test "$(stat violations)" -eq 0
check "key not in the run or the cache" sh -c "! grep -rqa '$VLMN_TEST_KEY' '$d/run'"
check "key not in any output" sh -c "! grep -qa '$VLMN_TEST_KEY' '$d'/*.txt '$d'/*.err"
finish
