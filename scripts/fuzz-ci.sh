#!/usr/bin/env bash
# Run every fuzz target in build-fuzz/ for FUZZ_SECONDS over its seed corpus
# (fuzz/corpus/NAME) and fail on any finding.
set -euo pipefail
secs=${FUZZ_SECONDS:-30}
shopt -s nullglob
targets=(build-fuzz/fuzz_*)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz-ci: no fuzz targets built" >&2; exit 1; }
for f in "${targets[@]}"; do
  [ -x "$f" ] || continue
  n=$(basename "$f")
  mkdir -p "build-fuzz/corpus-$n" "build-fuzz/artifacts-$n"
  seeds=(); [ -d "fuzz/corpus/$n" ] && seeds=("fuzz/corpus/$n")
  echo "fuzz-ci: $n for ${secs}s"
  "$f" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts-$n/" \
       "build-fuzz/corpus-$n" "${seeds[@]}" > "build-fuzz/$n.log" 2>&1 \
    || { tail -n 40 "build-fuzz/$n.log"; echo "fuzz-ci: $n FAILED" >&2; exit 1; }
  grep -E 'stat::number_of_executed_units' "build-fuzz/$n.log" || true
done
