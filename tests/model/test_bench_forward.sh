# `vlmn bench forward` on the tiny fixture models: the JSON object carries the fields
# RESULTS.md quotes, text-only and image samples run, usage errors exit 2, file errors 1.
. "$(dirname "$0")/../lib.sh"
D="$VLMN_TEST_DATA/engine"
S=$(scratch)

run_json() { "$VLMN_BIN" bench forward "$@" --json >"$S/out" 2>"$S/err"; }
has() { grep -q "\"$1\":" "$S/out"; }

check "image sample, both modes" run_json -m "$D/bf16.text.gguf" --mmproj "$D/bf16.mmproj.gguf" --tokens 40 --reps 1 -t 2
for k in text_tokens_per_s text_tokens_per_s_capture capture_overhead capture_inside vision_s max_rss_bytes \
         weight_bytes recorder_bytes peak_bf16_gflops no_capture capture; do
  check "field $k" has "$k"
done
check "image tokens from the model" grep -q '"image_tokens":9,' "$S/out"
check "one line" test "$(wc -l <"$S/out")" -eq 1
check "text-only, no capture" run_json -m "$D/q8_0.text.gguf" --tokens 20 --reps 1 --no-capture
check "no capture fields" bash -c "! grep -q capture_overhead '$S/out'"
check "exact" run_json -m "$D/f32.text.gguf" --tokens 16 --reps 1 --capture --exact
check "exact named" grep -q '"precision":"exact"' "$S/out"
check "text output" bash -c "'$VLMN_BIN' bench forward -m '$D/bf16.text.gguf' --tokens 16 --reps 1 | grep -q 'time inside the capture'"

"$VLMN_BIN" bench forward --tokens 16 >/dev/null 2>&1; check "no model: usage" test $? -eq 2
"$VLMN_BIN" bench forward -m "$D/bf16.text.gguf" --bogus >/dev/null 2>&1; check "bad option: usage" test $? -eq 2
"$VLMN_BIN" bench forward -m "$D/bf16.text.gguf" --mmproj "$D/bf16.mmproj.gguf" --tokens 5 >/dev/null 2>&1
check "fewer tokens than image positions" test $? -eq 2
"$VLMN_BIN" bench forward -m "$S/none.gguf" >/dev/null 2>&1; check "missing file" test $? -eq 1
finish
