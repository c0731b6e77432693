#!/usr/bin/env bash
# Runs `vlmn bench gemm` at the three LLaVA-7B GEMM shapes (M = 680 tokens) for each weight
# type and precision and prints one JSON line per run.
# Usage: bench/gemm_llava.sh [VLMN] [THREADS] [REPS]
set -eu
VLMN=${1:-build/vlmn}
T=${2:-2}
R=${3:-5}
for tp in bf16:fast f16:fast q8_0:fast q8_0:fastest q4_k:fast q4_k:fastest f32:fast; do
  for shape in "4096 4096" "11008 4096" "4096 11008"; do
    set -- $shape
    "$VLMN" bench gemm --type "${tp%%:*}" --prec "${tp##*:}" --m 680 --n "$1" --k "$2" -t "$T" --reps "$R" --json
  done
done
