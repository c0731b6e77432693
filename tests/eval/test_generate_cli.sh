#!/usr/bin/env bash
# vlmn generate and vlmn prune-eval end to end on the planted model: a single question,
# a dataset to JSONL (greedy: the same answers batched and one at a time), --drop specs,
# prune-eval's Table 3 / eval.sqlite / fig12.svg, resume after kill -9, and bad inputs
# (one-line error naming the problem, nothing written).
source "$(dirname "$0")/../lib.sh"
d=$(scratch)
V="$VLMN_BIN"
"$V" make-model --preset planted -o "$d/p" >/dev/null
"$V" make-dataset -n 24 -o "$d/ds" >/dev/null
"$V" make-dataset -n 8 --seed 5 --format qa -o "$d/qa" >/dev/null
M=(-m "$d/p-text.gguf" --mmproj "$d/p-mmproj.gguf" -t 2)

out=$("$V" generate "${M[@]}" --image "$d/qa/images/planted-000000.png" --question "Which shapes are in the image?" --max-tokens 6)
check "single question exits 0 and prints one line" test $? -eq 0 -a "$(wc -l <<<"$out")" -eq 1

"$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 6 --batch 8 -o "$d/b8.jsonl" 2>/dev/null
check "dataset: one JSON line per sample" test "$(wc -l < "$d/b8.jsonl")" -eq 8
check "dataset: JSONL keys" grep -q '"id":"planted-000000","question":"Which shapes are in the image?","answer":".*","tokens":\[' "$d/b8.jsonl"
"$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 6 --batch 1 -o "$d/b1.jsonl" 2>/dev/null
check "greedy answers do not depend on the batch size" cmp -s "$d/b1.jsonl" "$d/b8.jsonl"
"$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 6 --temperature 0.8 --top-p 0.9 --seed 3 -o "$d/s1.jsonl" 2>/dev/null
"$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 6 --temperature 0.8 --top-p 0.9 --seed 3 --batch 3 -o "$d/s2.jsonl" 2>/dev/null
check "sampling: the same seed gives the same answers" cmp -s "$d/s1.jsonl" "$d/s2.jsonl"
"$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 6 --drop none -o "$d/none.jsonl" 2>/dev/null
check "--drop none is the unmasked model" cmp -s "$d/none.jsonl" "$d/b8.jsonl"
printf 'layer,neuron\n0,3\n' > "$d/ok.csv"
check "--drop CSV runs" "$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 2 --drop "$d/ok.csv" -o "$d/csv.jsonl"
"$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 2 --drop random:0.1:4 -o "$d/rnd.jsonl" 2>"$d/err"
check "--drop random reports the count" grep -q "26 neurons (10.16%)" "$d/err"

# bad inputs: one line on stderr, exit 1, no output file
bad() { # NAME PATTERN CMD...
  local name=$1 pat=$2; shift 2
  rm -f "$d/bad.jsonl"
  "$@" 2>"$d/err" >/dev/null
  local rc=$?
  check "$name: exit 1" test $rc -eq 1
  check "$name: one line naming the problem" test "$(wc -l < "$d/err")" -eq 1 -a -n "$(grep -- "$pat" "$d/err")"
  check "$name: nothing written" test ! -e "$d/bad.jsonl" -a ! -e "$d/badeval"
}
printf 'layer,neuron\n1,64\n' > "$d/bad.csv"
bad "unknown neuron index" "line 2: neuron 64 outside \[0, 64)" "$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --drop "$d/bad.csv" -o "$d/bad.jsonl"
bad "random ratio outside [0,1]" "ratio 2 outside" "$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --drop random:2:1 -o "$d/bad.jsonl"

# a classified run
"$V" record "${M[@]}" --data "$d/ds/data.json" --images "$d/ds" -o "$d/run" >/dev/null 2>&1
"$V" classify "$d/run" >/dev/null 2>&1
check "a classified run" test -f "$d/run/run.sqlite"
bad "empty query result" "selects no neuron" "$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --drop "run:$d/run:p_u>=1&p_v>=0.5" -o "$d/bad.jsonl"
bad "query threshold outside [0,1]" "outside \[0, 1\]" "$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --drop "run:$d/run:p_u>=1.2" -o "$d/bad.jsonl"
check "--drop run:RUN:QUERY runs" "$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 2 --drop "run:$d/run:p_u>=0.9" -o "$d/q.jsonl"
check "--drop random-matched runs" "$V" generate "${M[@]}" --data "$d/qa/qa.jsonl" --max-tokens 2 --drop "random-matched:$d/run:p_u>=0.9:5" -o "$d/q2.jsonl"
bad "prune-eval: tau outside [0,1]" "outside \[0, 1\]" "$V" prune-eval "$d/run" --data "$d/qa/qa.jsonl" "${M[@]}" --tau 0.9,1.5 -o "$d/badeval"
sed 's/,"answer":"[^"]*"//' "$d/qa/qa.jsonl" > "$d/noans.jsonl"
bad "prune-eval: QA file without answers" 'no "answer"' "$V" prune-eval "$d/run" --data "$d/noans.jsonl" --images "$d/qa" "${M[@]}" -o "$d/badeval"

# prune-eval, killed with -9 after its first batch, then resumed
PE=("$V" prune-eval "$d/run" --data "$d/qa/qa.jsonl" "${M[@]}" --tau 0.9 --random-seeds 1 --max-tokens 4 --batch 4 -o "$d/eval")
"${PE[@]}" >/dev/null 2>"$d/pe1.err" &
pid=$!
for _ in $(seq 1 600); do grep -q "full: 4/8" "$d/pe1.err" && break; sleep 0.05; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check "first run stored a batch before the kill" grep -q "full: 4/8" "$d/pe1.err"
"${PE[@]}" >"$d/table.txt" 2>"$d/pe2.err"
check "resumed run exits 0" test $? -eq 0
kept=$(sed -n 's/.*24 answers stored: \([0-9]*\) kept.*/\1/p' "$d/pe2.err")
check "resume kept the answers already written" test -n "$kept" -a "${kept:-0}" -ge 4
"${PE[@]}" >/dev/null 2>"$d/pe3.err"
check "a finished eval generates nothing" grep -q "24 answers stored: 24 kept from before, 0 generated now" "$d/pe3.err"
check "Table 3 layout" grep -q "Unknown neurons (EM/F1/LL)" "$d/table.txt"
check "Table 3 pruning ratio row" grep -q "Pruning ratio (%)" "$d/table.txt"
check "table3.txt written" cmp -s "$d/table.txt" "$d/eval/table3.txt"
check "fig12.svg written" grep -q "<polyline" "$d/eval/fig12.svg"
"${PE[@]}" --max-tokens 5 >/dev/null 2>"$d/err"
check "resume with other settings is refused" grep -q "made with max_tokens '4', not '5'" "$d/err"
rm -rf "$d"
finish
