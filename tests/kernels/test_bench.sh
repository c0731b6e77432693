#!/usr/bin/env bash
# `vlmn bench gemm`: JSON output has the promised fields, bad options are usage errors.
set -u
. "$(dirname "$0")/../lib.sh"
out=$("$VLMN_BIN" bench gemm --type q8_0 --m 3 --n 5 --k 64 --reps 1 --threads 2 --json)
check "bench gemm exits 0" test $? -eq 0
for f in gflops peak_gflops type isa m n k threads seconds; do
  check "json has $f" grep -q "\"$f\":" <<<"$out"
done
check "json names the shape" grep -q '"m":3,"n":5,"k":64' <<<"$out"
out=$("$VLMN_BIN" bench gemm --type f32 --isa ref --m 2 --n 3 --k 7 --reps 1)
check "text output" grep -q "GFLOP/s" <<<"$out"
"$VLMN_BIN" bench gemm --type nope 2>/dev/null; check "bad type exits 2" test $? -eq 2
"$VLMN_BIN" bench gemm --m 0 2>/dev/null; check "bad M exits 2" test $? -eq 2
"$VLMN_BIN" bench nope 2>/dev/null; check "bad subcommand exits 2" test $? -eq 2
"$VLMN_BIN" bench gemm --type q8_0 --k 33 2>/dev/null; check "K not a block multiple fails" test $? -eq 1
out=$("$VLMN_BIN" bench attention --tokens 9 --heads 4 --kv-heads 2 --head-dim 32 --reps 1 --json)
check "bench attention json" grep -q '"gflops":' <<<"$out"
"$VLMN_BIN" bench attention --heads 3 --kv-heads 2 2>/dev/null; check "bad head grouping exits 2" test $? -eq 2
out=$("$VLMN_BIN" bench peak -t 1 --json)
check "bench peak json" grep -q '"f32_fma_gflops":' <<<"$out"
finish
