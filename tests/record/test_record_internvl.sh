#!/usr/bin/env bash
# InternVL end to end on a generated tiny pair (make-model --preset internvl-tiny):
# record (dynamic tiling: a different number of tiles, hence image positions, per
# sample) -> classify -> stats -> report, the report titled with the model family and
# its neuron count; probe on one sample; a LLaVA template on an InternVL model is
# refused in one line.
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
finish
