#!/usr/bin/env bash
# InternVL end to end on a generated tiny pair (make-model --preset internvl-tiny):
# record (dynamic tiling: a different number of tiles, hence image positions, per
# sample) -> classify -> stats -> report, the report titled with the model family and
# its neuron count; probe on one sample; a LLaVA template on an InternVL model is
# refused in one line; generate and prune-eval (template auto, tiles) and bad inputs: template /
# model mismatches and tile counts the model cannot take, one line naming the file,
# exit 1, nothing written.
set -u
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
D=$(scratch)
"$V" make-model --preset internvl-tiny --seed 5 -o "$D/ivl" > /dev/null; check "make-model internvl-tiny" test $? -eq 0
mkdir -p "$D/ds/images"
for k in wide tall square portrait; do cp "$VLMN_TEST_DATA/internvl/img_$k.png" "$D/ds/images/"; done
: > "$D/ds/data.jsonl"
i=0
for k in wide tall square portrait wide tall square portrait; do
  echo "{\"id\":\"s$i\",\"image\":\"images/img_$k.png\",\"question\":\"Describe the image.\",\"answer\":\"A red square on a blue background number $i.\"}" >> "$D/ds/data.jsonl"
  i=$((i + 1))
done
ARGS=(-m "$D/ivl-text.gguf" --mmproj "$D/ivl-mmproj.gguf" --data "$D/ds/data.jsonl" --images "$D/ds" --top-n 3 -t 1 -q)
"$V" record "${ARGS[@]}" --template internvl -o "$D/run"; check "record" test $? -eq 0
"$V" export "$D/run" samples > "$D/samples.csv"
check "8 samples ok" test "$(grep -c ',ok,' "$D/samples.csv")" -eq 8
# image positions per sample: 9 per tile; the four aspect ratios give different counts
cut -d, -f4 "$D/samples.csv" | tail -n +2 | sort -u > "$D/nimg"
check "variable image positions" test "$(wc -l < "$D/nimg")" -ge 3
check "multiples of 9" test -z "$(awk '$1 % 9 != 0' "$D/nimg")"
check "run names the model" grep -q '^model_arch,internvl-2.5' <("$V" export "$D/run" run)
"$V" classify "$D/run" > /dev/null; check "classify" test $? -eq 0
"$V" stats "$D/run" > /dev/null; check "stats" test $? -eq 0
"$V" report "$D/run" -o "$D/report" > /dev/null; check "report" test $? -eq 0
check "report title names internvl-2.5" grep -q '<h1>Neuron types of .*(internvl-2.5)' "$D/report/index.html"
check "report counts 3 x 45 = 135 neurons" grep -q '135 neurons (3 layers' "$D/report/index.html"
# the LLaVA template on an InternVL model: one line, exit 1
"$V" record "${ARGS[@]}" -o "$D/bad" 2> "$D/err"; rc=$?
check "llava template refused" test $rc -ne 0
check "one-line error" test "$(wc -l < "$D/err")" -eq 1
check "error names the problem" grep -q 'needs --template internvl' "$D/err"
# probe: the same tiling and template for one sample (wide: 2x1 grid + thumbnail = 27)
"$V" probe -m "$D/ivl-text.gguf" --mmproj "$D/ivl-mmproj.gguf" --image "$D/ds/images/img_wide.png" \
  --template internvl --question "Describe the image." --answer "A cat." -o "$D/probe" > /dev/null
check "probe internvl" test $? -eq 0
check "probe: 27 image positions" test "$(grep -o '"modality":"image"' "$D/probe/tokens.json" | wc -l)" -eq 27
check "probe: <img> and </img> tokens" grep -q '"piece":"</img>"' "$D/probe/tokens.json"
"$V" probe -m "$D/ivl-text.gguf" --mmproj "$D/ivl-mmproj.gguf" --image "$D/ds/images/img_wide.png" \
  --question "Q" --answer "A" -o "$D/probe2" 2> "$D/err2"
check "probe: llava template refused" test $? -eq 1
check "probe: one-line error" test "$(wc -l < "$D/err2")" -eq 1

# generate: --template auto picks internvl, the image is tiled; JSONL per sample
G=(-m "$D/ivl-text.gguf" --mmproj "$D/ivl-mmproj.gguf" -t 1)
"$V" generate "${G[@]}" --data "$D/ds/data.jsonl" --images "$D/ds" --max-tokens 5 -o "$D/gen.jsonl" 2>/dev/null
check "generate internvl" test $? -eq 0
check "generate: 8 answers" test "$(grep -c '"tokens":\[' "$D/gen.jsonl")" -eq 8
"$V" generate "${G[@]}" --template internvl --image "$D/ds/images/img_tall.png" --question "What?" --max-tokens 5 \
  --max-tiles 2 -o "$D/one.jsonl" > /dev/null 2>&1
check "generate --max-tiles 2" test $? -eq 0
"$V" make-model --preset tiny --seed 5 -q -o "$D/llava" > /dev/null
bad() { # NAME PATTERN CMD...: exit 1, one line naming the file and the problem, nothing written
  local name=$1 pat=$2; shift 2
  rm -f "$D/bad.jsonl"
  "$@" -o "$D/bad.jsonl" 2> "$D/err" > /dev/null
  local rc=$?
  check "$name: exit 1" test $rc -eq 1
  check "$name: one line" test "$(wc -l < "$D/err")" -eq 1
  check "$name: names the problem" grep -q -- "$pat" "$D/err"
  check "$name: nothing written" test ! -e "$D/bad.jsonl"
}
Q=(--image "$D/ds/images/img_wide.png" --question "What?")
L=(-m "$D/llava-text.gguf" --mmproj "$D/llava-mmproj.gguf" -t 1)
bad "llava template on internvl" "ivl-text.gguf: an internvl-2.5 model needs --template internvl" \
  "$V" generate "${G[@]}" "${Q[@]}" --template llava-v1
bad "internvl template on llava" "llava-text.gguf: --template internvl is for InternVL models, not llava-1.5" \
  "$V" generate "${L[@]}" "${Q[@]}" --template internvl
bad "tiles on llava" "llava-text.gguf: a llava-1.5 model takes one image input, not --max-tiles 4" \
  "$V" generate "${L[@]}" "${Q[@]}" --max-tiles 4
# the reference fixtures have a 512-position context: 64 tiles + thumbnail x 9 do not fit
F=(-m "$VLMN_TEST_DATA/internvl/f32.text.gguf" --mmproj "$VLMN_TEST_DATA/internvl/f32.mmproj.gguf" -t 1)
bad "more tiles than the context" "f32.text.gguf: 64 tiles (+ thumbnail) are 585 image positions, beyond the context length 512" \
  "$V" generate "${F[@]}" "${Q[@]}" --max-tiles 64
# prune-eval on the InternVL run: the QA path tiles and uses the internvl template too
"$V" prune-eval "$D/run" --data "$D/ds/data.jsonl" --images "$D/ds" "${G[@]}" --tau 0.9 --random-seeds 1 \
  --max-tokens 3 -o "$D/eval" > /dev/null 2>&1
check "prune-eval internvl" test $? -eq 0 -a -s "$D/eval/table3.txt"
"$V" prune-eval "$D/run" --data "$D/ds/data.jsonl" --images "$D/ds" "${G[@]}" --template llava-v1 -o "$D/badeval" \
  2> "$D/err" > /dev/null
check "prune-eval: llava template refused" test $? -eq 1 -a "$(wc -l < "$D/err")" -eq 1 -a ! -e "$D/badeval"
check "prune-eval: names the file" grep -q 'ivl-text.gguf: an internvl-2.5 model needs --template internvl' "$D/err"
# prune-eval --max-tiles: checked against the model before EVAL is made, kept in its meta
"$V" prune-eval "$D/run" --data "$D/ds/data.jsonl" --images "$D/ds" "${L[@]}" --max-tiles 4 -o "$D/badeval" \
  2> "$D/err" > /dev/null
check "prune-eval --max-tiles on llava refused" test $? -eq 1 -a "$(wc -l < "$D/err")" -eq 1 -a ! -e "$D/badeval"
check "prune-eval --max-tiles: names the file" grep -q 'llava-text.gguf: a llava-1.5 model takes one image input, not --max-tiles 4' "$D/err"
"$V" prune-eval "$D/run" --data "$D/ds/data.jsonl" --images "$D/ds" "${G[@]}" --tau 0.9 --random-seeds 0 \
  --max-tokens 3 --max-tiles 1 -o "$D/eval1" > /dev/null 2>&1
check "prune-eval --max-tiles 1" test $? -eq 0 -a -s "$D/eval1/table3.txt"
check "prune-eval: max_tiles in meta" test "$(sqlite3 "$D/eval1/eval.sqlite" "SELECT value FROM meta WHERE key='max_tiles'")" = 1
"$V" prune-eval "$D/run" --data "$D/ds/data.jsonl" --images "$D/ds" "${G[@]}" --tau 0.9 --random-seeds 0 \
  --max-tokens 3 --max-tiles 2 -o "$D/eval1" > /dev/null 2> "$D/err"
check "prune-eval: resuming with other --max-tiles refused" test $? -eq 1 -a "$(wc -l < "$D/err")" -eq 1
check "prune-eval: says max_tiles" grep -q 'max_tiles' "$D/err"
"$V" generate "${G[@]}" "${Q[@]}" --max-tiles 65 -o "$D/bad.jsonl" 2> "$D/err"
check "--max-tiles 65: usage error" test $? -eq 2
check "--max-tiles 65: one line" test "$(wc -l < "$D/err")" -eq 1 -a ! -e "$D/bad.jsonl"
finish
