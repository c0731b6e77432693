#!/usr/bin/env bash
# Trace cost vs a full record pass of the same samples (issue 13): a random LLaVA-shaped
# model (n_embd 512, n_ff 1376, 8 layers, CLIP at 336 px / patch 14 = 576 image tokens,
# F16), 5 drawn samples. Times, each best of REPS:
#   record   `vlmn record` of the 5 samples (every layer captured, run finished)
#   trace    `vlmn trace --neurons random:2400:1 --samples ids:0-4` into a fresh copy
#            of that run (2,400 neurons over all layers, 12,000 pairs)
#   shallow  the same with --neurons layer=0-1,random:2400:1 (forward stops after layer 1)
# Prints the ratios trace/record and shallow/record (goal: trace <= 1).
# usage: bash bench/trace.sh [VLMN] [DIR] [THREADS] [REPS]
set -euo pipefail
V=${1:-build/vlmn}; D=${2:-/tmp/vlmn-bench-trace}; T=${3:-2}; REPS=${4:-3}
rm -rf "$D"; mkdir -p "$D"
"$V" make-model --preset tiny --type f16 --n-embd 512 --n-ff 1376 --n-layer 8 --n-head 8 --n-head-kv 8 \
  --n-ctx 2048 --v-size 336 --v-patch 14 --v-embd 256 --v-ff 1024 --v-layer 2 --v-head 4 -q -o "$D/m" >/dev/null
"$V" make-dataset -n 5 --seed 1 --format jsonl -o "$D/ds" >/dev/null
now() { date +%s.%N; }
best() { awk 'NR == 1 || $1 < m { m = $1 } END { printf "%.3f", m }'; }
rec_times=() trace_times=() shallow_times=()
for r in $(seq 1 "$REPS"); do
  rm -rf "$D/run"
  t0=$(now)
  "$V" record -m "$D/m-text.gguf" --mmproj "$D/m-mmproj.gguf" --data "$D/ds/data.jsonl" --images "$D/ds" \
    --top-n 5 -t "$T" -q -o "$D/run"
  rec_times+=("$(echo "$(now) - $t0" | bc)")
  for kind in trace shallow; do
    rm -rf "$D/$kind"; cp -r "$D/run" "$D/$kind"
    spec="random:2400:1"; [ $kind = shallow ] && spec="layer=0-1,random:2400:1"
    t0=$(now)
    "$V" trace "$D/$kind" --neurons "$spec" --samples ids:0-4 -t "$T" -q >/dev/null
    el=$(echo "$(now) - $t0" | bc)
    if [ $kind = trace ]; then trace_times+=("$el"); else shallow_times+=("$el"); fi
  done
done
R=$(printf '%s\n' "${rec_times[@]}" | best)
TR=$(printf '%s\n' "${trace_times[@]}" | best)
SH=$(printf '%s\n' "${shallow_times[@]}" | best)
echo "record 5 samples:                       $R s"
echo "trace 5 samples x 2400 neurons:         $TR s   ratio trace/record   $(echo "scale=3; $TR / $R" | bc)"
echo "trace 5 x 2400 neurons in layers 0-1:   $SH s   ratio shallow/record $(echo "scale=3; $SH / $R" | bc)"
echo "store: $(stat -c %s "$D/trace/traces.f32") bytes traces.f32, $(stat -c %s "$D/trace/traces.sqlite") bytes traces.sqlite"
