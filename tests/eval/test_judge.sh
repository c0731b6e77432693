#!/usr/bin/env bash
# prune-eval --judge: the Video-ChatGPT judge protocol against the test server's "judge"
# model (yes/5 when the answer equals the reference, else no/1), malformed replies
# retried (judgebad) or counted as failures, never as "no" (judgenever), grades in the
# judge_* columns, judge rows in Table 3, a rerun asks nothing again.
set -u
. "$(dirname "$0")/../lib.sh"
: "${VLMN_LLM_SERVER:?VLMN_LLM_SERVER not set (libmicrohttpd missing at build time)}"
d=$(scratch)
V=$VLMN_BIN
export VLMN_TEST_KEY="sk-judge-key-77" JUDGE_KEY="sk-judge-key-77"
"$VLMN_LLM_SERVER" --port-file "$d/port" 2>"$d/server.log" & spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null' EXIT
for i in $(seq 1 300); do [ -s "$d/port" ] && break; sleep 0.02; done
port=$(cat "$d/port"); url="http://127.0.0.1:$port/v1"
stat() { curl -s "http://127.0.0.1:$port/stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
"$V" make-model --preset planted -o "$d/p" >/dev/null
"$V" make-dataset -n 24 -o "$d/ds" >/dev/null
"$V" make-dataset -n 6 --seed 5 --format qa -o "$d/qa" >/dev/null
M=(-m "$d/p-text.gguf" --mmproj "$d/p-mmproj.gguf" -t 2)
"$V" record "${M[@]}" --data "$d/ds/data.json" --images "$d/ds" --top-n 10 -q -o "$d/run" >/dev/null 2>&1
"$V" classify "$d/run" >/dev/null
PE=("$V" prune-eval "$d/run" --data "$d/qa/qa.jsonl" "${M[@]}" --tau 0.9 --random-seeds 1 --max-tokens 4)
J=(--judge "$url" --judge-key-env JUDGE_KEY)

"${PE[@]}" "${J[@]}" --judge-model judge -o "$d/e1" >"$d/t1.txt" 2>"$d/e1.err"
check "judge run exits 0" test $? -eq 0
db="$d/e1/eval.sqlite"
check "every answer graded" test "$(sqlite3 "$db" "SELECT COUNT(*) FROM answers WHERE judge_yes IS NULL")" -eq 0
check "judge_model stored" test "$(sqlite3 "$db" "SELECT COUNT(DISTINCT judge_model) FROM answers WHERE judge_model='judge'")" -eq 1
# the grade follows the answers (checked here with SQL, not by vlmn)
bad=$(sqlite3 "$db" "SELECT COUNT(*) FROM answers WHERE judge_yes != (lower(trim(answer)) = lower(trim(reference)))
                     OR judge_score != CASE judge_yes WHEN 1 THEN 5 ELSE 1 END")
check "grades match the protocol" test "$bad" -eq 0
check "Table 3 judge row" grep -q "Unknown neurons (judge Acc./Score)" "$d/t1.txt"
r0=$(stat requests)
"${PE[@]}" "${J[@]}" --judge-model judge -o "$d/e1" >/dev/null 2>&1
check "rerun asks the judge nothing" test "$(stat requests)" -eq "$r0"

"${PE[@]}" "${J[@]}" --judge-model judgebad -o "$d/e2" >/dev/null 2>"$d/e2.err"
check "malformed first replies retried" test "$(sqlite3 "$d/e2/eval.sqlite" "SELECT COUNT(*) FROM answers WHERE judge_yes IS NULL")" -eq 0
"${PE[@]}" "${J[@]}" --judge-model judgenever -o "$d/e3" >/dev/null 2>"$d/e3.err"
check "always malformed: run still exits 0" test $? -eq 0
n=$(sqlite3 "$d/e3/eval.sqlite" "SELECT COUNT(*) FROM answers")
check "always malformed: all failures, none counted as no" \
  test "$(sqlite3 "$d/e3/eval.sqlite" "SELECT COUNT(*) FROM answers WHERE judge_yes IS NULL AND judge_score IS NULL")" -eq "$n"
check "failures reported" grep -q "judge failed on .*malformed reply" "$d/e3.err"
check "usage: --judge needs --judge-model" sh -c "! '$V' prune-eval '$d/run' --data x -m a --mmproj b -o c --judge '$url' 2>/dev/null"
check "server saw no protocol violation" test "$(stat violations)" -eq 0
check "key not written" sh -c "! grep -rqa '$VLMN_TEST_KEY' '$d/e1' '$d/e2' '$d/e3'"
finish
