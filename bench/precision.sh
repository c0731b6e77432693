#!/usr/bin/env bash
# Precision benchmark: the same generated dataset recorded with every --precision for BF16
# and Q8_0 weights on a model with LLaVA-7B text widths (n_embd 4096, n_ff 11008, 32 heads,
# vocab 32000), each run classified and compared with `vlmn compare` against `exact` on F32
# weights (the same seeded weights before rounding) and against `exact` on the same weights.
# Prints one table row per mode (markdown) at the end; JSON of each comparison is kept in
# DIR/cmp-*.json. Steps whose output exists are skipped, so an interrupted run continues.
#
# Without AVX-512 (VLMN_ISA != avx512) every precision runs the same f32 kernels, so the
# fast/fastest runs are recorded with VLMN_EMULATE_PRECISION=1: the f32 path rounds the
# GEMM activations exactly as the AVX-512 kernels of that precision do (docs/kernels.md);
# each run's provenance says so (key precision_emulation).
#
# Usage: bench/precision.sh [VLMN] [DIR]
#   env: LAYERS (2) SAMPLES (200) THREADS (2) V_LAYER (2) V_SIZE (112) TOP_N (50) SEED (7)
#        RUNS (the weights:precision list below), EMULATE (auto|0|1)
set -eu
VLMN=$(realpath "${1:-build/vlmn}")
DIR=${2:-bench-precision}
L=${LAYERS:-2}
S=${SAMPLES:-200}
T=${THREADS:-2}
VL=${V_LAYER:-2}
VS=${V_SIZE:-112}
N=${TOP_N:-50}
SEED=${SEED:-7}
mkdir -p "$DIR"
cd "$DIR"
log() { echo "[precision $(date -u +%H:%M:%S)] $*" >&2; }

for ty in f32 bf16 q8_0; do
  if [ ! -f "m-$ty-text.gguf" ]; then
    log "make-model $ty"
    "$VLMN" make-model --preset llava-7b --type "$ty" --seed "$SEED" --n-layer "$L" \
      --v-layer "$VL" --v-size "$VS" -q -o "m-$ty" >/dev/null
  fi
done
[ -f ds/data.json ] || { log "make-dataset $S"; "$VLMN" make-dataset -n "$S" --seed "$SEED" -o ds >/dev/null; }

# Reference first, then the modes a user picks for speed, then the exact runs of the
# quantised weights (which separate weight rounding from arithmetic).
RUNS=${RUNS:-"f32:exact q8_0:exact bf16:exact q8_0:fastest q8_0:fast bf16:fast"}
EMULATE=${EMULATE:-auto}
if [ "$EMULATE" = auto ]; then
  if grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null && grep -q avx512_vnni /proc/cpuinfo; then EMULATE=0; else EMULATE=1; fi
fi
for r in $RUNS; do
  ty=${r%%:*} pr=${r##*:} run="r-$ty-$pr"
  if [ ! -f "$run/done" ]; then
    rm -rf "$run"
    log "record $run"
    t0=$(date +%s)
    emu=0
    [ "$pr" != exact ] && emu=$EMULATE
    VLMN_EMULATE_PRECISION=$emu "$VLMN" record -m "m-$ty-text.gguf" --mmproj "m-$ty-mmproj.gguf" --data ds/data.json \
      --images ds -o "$run" --precision "$pr" --top-n "$N" -t "$T" --log-every 50
    echo $(( $(date +%s) - t0 )) > "$run/done"
  fi
  [ -f "$run/classified" ] || { "$VLMN" classify "$run" >/dev/null && touch "$run/classified"; }
done

if ! "$VLMN" help compare >/dev/null 2>&1; then log "this vlmn has no compare command"; exit 0; fi
printf '| weights | precision | record s | vs | label agreement | mean top-%s Jaccard | identical lists | p mean abs diff | p within 0.02 | max rel. error of global max |\n' "$N"
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for r in $RUNS; do
  ty=${r%%:*} pr=${r##*:} run="r-$ty-$pr"
  for ref in r-f32-exact "r-$ty-exact"; do
    [ "$run" = "$ref" ] && continue
    [ "$ref" = r-f32-exact ] || [ "$pr" != exact ] || continue
    [ -d "$ref" ] || continue
    out="cmp-$ty-$pr-vs-${ref#r-}.json"
    "$VLMN" compare "$ref" "$run" --json > "$out"
    "$VLMN" compare "$ref" "$run" > "${out%.json}.txt"
    /usr/bin/env awk -v ty="$ty" -v pr="$pr" -v secs="$(cat "$run/done")" -v ref="${ref#r-}" '
      BEGIN { RS = "\0" }
      function num(key,   m) { if (match($0, "\"" key "\": *[-0-9.eE+]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*: */, "", m); return m } return "?" }
      { printf "| %s | %s | %s | %s | %.2f%% | %.4f | %.1f%% | %.2e | %.2f%% | %.2e |\n", ty, pr, secs, ref,
          100 * num("label_agreement"), num("mean_jaccard"), 100 * num("identical_lists"),
          num("p_mean_abs_diff"), 100 * num("p_within_tol"), num("global_max_rel_err_max") }' "$out"
  done
done
