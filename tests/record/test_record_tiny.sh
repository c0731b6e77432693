#!/usr/bin/env bash
# vlmn record with a real (tiny, generated) LLaVA model on 40 generated samples:
# 3 shards + merge, mpirun -n 2, and kill -9 + --resume each equal the single run.
# (test_record_vs_probe checks the single run against vlmn probe.)
set -u
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
. "$(dirname "$0")/record_lib.sh"
D=$(scratch)
"$V" make-model --preset tiny --seed 11 -q -o "$D/tiny"; check "make-model" test $? -eq 0
"$V" make-dataset -n 40 --seed 2 --format jsonl -o "$D/ds"; check "make-dataset" test $? -eq 0
rm -f "$D/ds/images/planted-000013.png"   # one failed sample
ARGS=(-m "$D/tiny-text.gguf" --mmproj "$D/tiny-mmproj.gguf" --data "$D/ds/data.jsonl" --images "$D/ds"
      --top-n 4 -t 1 -q --checkpoint-every 5)
"$V" record "${ARGS[@]}" -o "$D/single"; check "single run" test $? -eq 0
check "one failed sample" test "$("$V" export "$D/single" samples | grep -c ',failed,')" -eq 1
for i in 0 1 2; do "$V" record "${ARGS[@]}" --shard $i/3 -o "$D/s$i"; done
"$V" merge -q "$D/s0" "$D/s1" "$D/s2" -o "$D/merged"; check "merge" test $? -eq 0
check "3 shards + merge == single (tiny model)" same_run "$D/single" "$D/merged"
mpi_run 2 record "${ARGS[@]}" -o "$D/mpi"; rc=$?
if [ $rc -ne 77 ]; then
  check "mpirun exit" test $rc -eq 0
  check "mpirun -n 2 == single (tiny model)" same_run "$D/single" "$D/mpi"
fi
RANDOM=$$
kill_resume 3 "${ARGS[@]}" -o "$D/killed"; check "resume exit" test $? -eq 0
check "kill -9 + resume == single (tiny model)" same_run "$D/single" "$D/killed"
"$V" record "${ARGS[@]}" --text-tokens all -o "$D/all"; check "--text-tokens all" test $? -eq 0
check "--text-tokens all counts more text tokens" test \
  "$("$V" export "$D/all" run | grep '^n_text_tokens,' | cut -d, -f2)" -gt "$("$V" export "$D/single" run | grep '^n_text_tokens,' | cut -d, -f2)"
finish
