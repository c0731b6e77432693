#!/usr/bin/env bash
# The main job on the built-in default: a planted tiny LLaVA (neurons whose type is
# known by construction) and a procedurally drawn dataset, run through the whole
# pipeline: make-model -> make-dataset -> record -> classify -> stats -> report.
# Usage: scripts/demo.sh [BUILD_DIR] [OUT_DIR]; DEMO_SAMPLES=N draws N images instead of 400
# (the planted neurons are all recovered from 400; fewer only exercise the pipeline).
set -euo pipefail
build=${1:-build}
out=${2:-demo-run}
vlmn="$build/vlmn"
[ -x "$vlmn" ] || { echo "demo: $vlmn not built (run make)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
"$vlmn" --version
echo "== 1/6 make-model: planted tiny LLaVA -> $out/model-*.gguf"
"$vlmn" make-model --preset planted -o "$out/model"
echo "== 2/6 make-dataset: drawn images + descriptions -> $out/data"
"$vlmn" make-dataset --preset planted -n "${DEMO_SAMPLES:-400}" -o "$out/data"
echo "== 3/6 record: top-50 samples of every FFN neuron -> $out/run"
"$vlmn" record -m "$out/model-text.gguf" --mmproj "$out/model-mmproj.gguf" \
    --data "$out/data/data.json" --images "$out/data" -o "$out/run"
echo "== 4/6 classify (T_v=2 n_v=4 T_t=3 n_t=2)"
"$vlmn" classify "$out/run"
echo "== 5/6 stats"
"$vlmn" stats "$out/run"
echo "== 6/6 report"
"$vlmn" report "$out/run" -o "$out/report"
# How well the classifier recovered the planted neurons' true types.
"$vlmn" export "$out/run" neurons --format csv > "$out/neurons.csv"
# How well the classifier recovered the planted neurons' true types (the model was
# built so that these neurons are visual / text / multi-modal / unknown by design).
tr -d ' \t\n' < "$out/model-planted.json" | sed 's/},{/\n/g' |
  sed -E 's/.*"layer":([0-9]+),"neuron":([0-9]+),"type":"([a-z]+)".*/\1,\2,\3/' > "$out/planted.csv"
awk -F, 'NR == FNR { want[$1","$2] = $3; next }
         FNR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
         ($1","$2) in want {
           t = want[$1","$2]; p = $col["p_" t]; n++
           if ($col["label"] == t && p >= 0.8) ok++
           else printf "demo: planted %s neuron %d/%d got label %s (p_%s = %s)\n", t, $1, $2, $col["label"], t, p
         }
         END { printf "demo: %d of %d planted neurons recovered with their true label and p >= 0.8\n", ok, n }' \
    "$out/planted.csv" "$out/neurons.csv"
echo
echo "demo: planted neurons and their true types: $out/model-planted.json"
echo "demo: neuron table: $out/neurons.csv"
echo "demo: report: $(cd "$out/report" && pwd)/index.html"
