#!/usr/bin/env bash
# The pruning experiment (paper B.1, Table 3, Fig. 12) end to end on the planted model:
# make-model -> make-dataset (descriptions, and a QA set) -> record -> classify ->
# prune-eval (full model, unknown neurons p_u >= tau pruned, random masks of the same
# size), printing the Table 3 layout. Usage: scripts/demo-prune.sh [BUILD_DIR] [OUT_DIR]
set -euo pipefail
build=${1:-build}
out=${2:-demo-prune}
vlmn="$build/vlmn"
[ -x "$vlmn" ] || { echo "demo-prune: $vlmn not built (run make)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
echo "== 1/5 make-model: planted tiny LLaVA -> $out/model-*.gguf"
"$vlmn" make-model --preset planted -o "$out/model"
echo "== 2/5 make-dataset: 120 described images to record, 16 QA pairs to answer"
"$vlmn" make-dataset -n 120 -o "$out/data"
"$vlmn" make-dataset -n 16 --seed 2 --format qa -o "$out/qa"
echo "== 3/5 record"
"$vlmn" record -m "$out/model-text.gguf" --mmproj "$out/model-mmproj.gguf" \
    --data "$out/data/data.json" --images "$out/data" -o "$out/run" 2>&1 | tail -1
echo "== 4/5 classify"
"$vlmn" classify "$out/run"
echo "== 5/5 prune-eval (greedy, 8 new tokens; 3 random masks per tau)"
"$vlmn" prune-eval "$out/run" --data "$out/qa/qa.jsonl" -m "$out/model-text.gguf" \
    --mmproj "$out/model-mmproj.gguf" --tau 0.9,0.6 --random-seeds 3 --max-tokens 8 -o "$out/eval" 2>/dev/null
echo
echo "demo-prune: every answer and grade: $out/eval/eval.sqlite; Fig. 12: $out/eval/fig12.svg"
