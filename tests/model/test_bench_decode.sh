# `vlmn bench decode`: on models it writes itself (--preset tiny, BF16 and Q8_0) and on a
# fixture model: one JSON line per type and batch with the fields bench/RESULTS.md quotes,
# consistent per-layer / extrapolated numbers, --keep and cleanup, usage errors exit 2,
# file errors 1.
. "$(dirname "$0")/../lib.sh"
D="$VLMN_TEST_DATA/engine"
S=$(scratch)

run_json() { "$VLMN_BIN" bench decode "$@" --json >"$S/out" 2>"$S/err"; }
has() { grep -q "\"$1\":" "$S/out"; }
# field K of JSON line N (1-based)
field() { sed -n "${1}p" "$S/out" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

check "written models, two types x two batches" \
  run_json --preset tiny --layers 2 --type bf16,q8_0 --batch 1,3 --tokens 3 --reps 1 -t 2 --bw-mib 16 --dir "$S/m" --keep
check "four lines" test "$(wc -l <"$S/out")" -eq 4
for k in tokens_per_s tokens_per_s_cpu_time step_ms per_layer_ms logits_ms extrapolated_tokens_per_s \
         weight_bytes_per_step layer_weight_bytes weight_gbps mem_read_gbps bandwidth_fraction vs_batch1 full_layers; do
  check "field $k" has "$k"
done
check "types in order" test "$(field 1 weights) $(field 3 weights)" = "BF16 Q8_0"
check "batches in order" test "$(field 1 batch) $(field 2 batch) $(field 3 batch) $(field 4 batch)" = "1 3 1 3"
check "layers" test "$(field 2 layers)" = 2
check "batch 1 is its own baseline" test "$(field 1 vs_batch1)" = 1.0
check "bandwidth measured" python3 -c "import sys; sys.exit(not float('$(field 1 mem_read_gbps)') > 0)"
# 2 layers extrapolated to 32 must be slower; two layers' weights are part of a step's
check "extrapolation slower than 2 layers" python3 -c \
  "import sys; sys.exit(not float('$(field 2 extrapolated_tokens_per_s)') < float('$(field 2 tokens_per_s)'))"
check "layer bytes inside step bytes" python3 -c \
  "import sys; sys.exit(not 0 < 2 * $(field 1 layer_weight_bytes) < $(field 1 weight_bytes_per_step))"
check "step = logits + layers x layer" python3 -c \
  "import sys; s, l, g = $(field 4 step_ms), $(field 4 per_layer_ms), $(field 4 logits_ms); sys.exit(not abs(s - g - 2 * l) <= 1e-3 * s + 1e-3)"
check "kept models" test -s "$S/m/decode-BF16-text.gguf" -a -s "$S/m/decode-Q8_0-text.gguf"
check "fixture model" run_json -m "$D/q8_0.text.gguf" --batch 2 --tokens 2 --bw-mib 16 -t 1
check "one line for -m" test "$(wc -l <"$S/out")" -eq 1
check "batch 2 named" grep -q '"batch":2,' "$S/out"
check "written models removed without --keep" \
  bash -c "'$VLMN_BIN' bench decode --preset tiny --layers 1 --type f32 --batch 1 --tokens 1 --bw-mib 16 --dir '$S/gone' >/dev/null && test -z \"\$(ls -A '$S/gone')\""
check "text output" bash -c "'$VLMN_BIN' bench decode -m '$D/bf16.text.gguf' --batch 1,2 --tokens 2 --bw-mib 16 | grep -q 'memory read bandwidth'"

"$VLMN_BIN" bench decode -m "$D/bf16.text.gguf" --batch 0 >/dev/null 2>&1; check "batch 0: usage" test $? -eq 2
"$VLMN_BIN" bench decode -m "$D/bf16.text.gguf" --batch 1,x >/dev/null 2>&1; check "bad batch list: usage" test $? -eq 2
"$VLMN_BIN" bench decode --type q4_k >/dev/null 2>&1; check "bad type: usage" test $? -eq 2
"$VLMN_BIN" bench decode -m "$D/bf16.text.gguf" --bogus >/dev/null 2>&1; check "bad option: usage" test $? -eq 2
"$VLMN_BIN" bench decode -m "$S/none.gguf" --bw-mib 16 2>"$S/err" >/dev/null; check "missing file" test $? -eq 1
check "error names the file" grep -q "none.gguf" "$S/err"
"$VLMN_BIN" bench decode -m "$D/bf16.text.gguf" --tokens 60000 --bw-mib 16 >/dev/null 2>&1
check "beyond the context: error" test $? -eq 1
finish
