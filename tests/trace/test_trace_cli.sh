#!/usr/bin/env bash
# vlmn trace / vlmn draw on a tiny generated model: kill -9 at random moments + rerun
# gives exactly the store an uninterrupted trace gives (traces.f32 bytes and the index),
# a rerun recomputes nothing, bad SPECs fail with one line, an empty selection is
# reported, a run from another backend or a changed model is refused; draw errors.
set -u
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
D=$(scratch)
"$V" make-model --preset tiny --seed 4 -q -o "$D/tiny"; check "make-model" test $? -eq 0
"$V" make-dataset -n 60 --seed 8 --format jsonl -o "$D/ds"; check "make-dataset" test $? -eq 0
"$V" record -m "$D/tiny-text.gguf" --mmproj "$D/tiny-mmproj.gguf" --data "$D/ds/data.jsonl" --images "$D/ds" \
  --top-n 20 -t 1 -q -o "$D/run"; check "record" test $? -eq 0
"$V" classify "$D/run" >/dev/null; check "classify" test $? -eq 0
cp -r "$D/run" "$D/a"; cp -r "$D/run" "$D/b"
SPEC=(--neurons "random:60:3" --samples "top:1-20" -t 1)
out=$("$V" trace "$D/a" "${SPEC[@]}" -q); check "trace" test $? -eq 0
check "summary line" grep -q '^neurons 60 pairs 1200 ' <<<"$out"

# kill -9 at random moments, then let it finish
RANDOM=$$
hits=0
for k in 1 2 3 4; do
  "$V" trace "$D/b" "${SPEC[@]}" -q >/dev/null 2>&1 & pid=$!
  for i in $(seq 1 500); do [ -e "$D/b/traces.sqlite" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
  sleep 0.0$((RANDOM % 9 + 1))
  kill -9 $pid 2>/dev/null && hits=$((hits + 1))
  wait $pid 2>/dev/null
done
echo "kill -9 hits: $hits of 4"
"$V" trace "$D/b" "${SPEC[@]}" -q >/dev/null; check "resume after kill -9" test $? -eq 0
check "kill -9 + rerun: same traces.f32" cmp -s "$D/a/traces.f32" "$D/b/traces.f32"
check "kill -9 + rerun: same index" cmp -s <("$V" trace "$D/a" --list) <("$V" trace "$D/b" --list)
check "1200 pairs listed" test "$("$V" trace "$D/b" --list | wc -l)" -eq 1201
out=$("$V" trace "$D/b" "${SPEC[@]}" 2>&1 >/dev/null); check "rerun exit" test $? -eq 0
check "rerun recomputes nothing" grep -q '1200 pairs already stored; 0 to trace' <<<"$out"
size=$(stat -c %s "$D/b/traces.f32")
"$V" trace "$D/b" "${SPEC[@]}" -q >/dev/null
check "rerun appends nothing" test "$(stat -c %s "$D/b/traces.f32")" -eq "$size"

# bytes appended by a killed writer past the committed end are cut
printf 'garbage!' >> "$D/b/traces.f32"
"$V" trace "$D/b" --neurons "0:1" --samples "ids:0" -q >/dev/null; check "trace after garbage" test $? -eq 0
check "garbage cut" test "$(stat -c %s "$D/b/traces.f32")" -gt "$size"
check "old traces intact" cmp -s <("$V" trace "$D/a" --list) <("$V" trace "$D/b" --list | grep -v '^0,1,0,')

bad() {  # NAME PATTERN CMD...: exit non-zero, one line on stderr matching PATTERN
  local name=$1 pat=$2; shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  check "$name: fails" test $rc -ne 0
  check "$name: message" grep -q -- "$pat" <<<"$err"
  check "$name: one line" test "$(wc -l <<<"$err")" -eq 1
}
bad "unknown term" "unknown term" "$V" trace "$D/a" --neurons "colour=red" --samples top:1 -q
bad "tau outside [0,1]" "outside \[0, 1\]" "$V" trace "$D/a" --neurons "p_v>=1.5" --samples top:1 -q
bad "layer out of range" "out of range" "$V" trace "$D/a" --neurons "layer=9" --samples top:1 -q
bad "neuron out of range" "out of range" "$V" trace "$D/a" --neurons "0:999" --samples top:1 -q
bad "rank out of range" "out of range" "$V" trace "$D/a" --neurons "0:1" --samples top:21 -q
bad "sample id out of range" "out of range" "$V" trace "$D/a" --neurons "0:1" --samples ids:60 -q
bad "bad sample spec" "sample spec" "$V" trace "$D/a" --neurons "0:1" --samples best:3 -q
check "missing specs: usage error" test "$("$V" trace "$D/a" >/dev/null 2>&1; echo $?)" -eq 2
bad "not a run" "not a run directory" "$V" trace "$D/nope" --neurons all --samples top:1 -q
err=$("$V" trace "$D/a" --neurons "label=visual,p_v>=1,p_t>=1" --samples top:1 2>&1 >/dev/null); rc=$?
check "empty selection: exit 0" test $rc -eq 0
check "empty selection: reported" grep -q "empty selection" <<<"$err"

# another model file than the run's
cp -r "$D/run" "$D/c"
"$V" make-model --preset tiny --seed 5 -q -o "$D/other" >/dev/null
bad "other model" "SHA-256" "$V" trace "$D/c" --neurons "0:1" --samples top:1 -m "$D/other-text.gguf" -q
# a synthetic run cannot be traced
mkdir -p "$D/sds"; "$V" make-dataset -n 4 --format jsonl -o "$D/sds" >/dev/null
"$V" record --synthetic 2x8 --data "$D/sds/data.jsonl" --images "$D/sds" --top-n 2 -q -o "$D/syn" >/dev/null
bad "synthetic run" "only llava runs" "$V" trace "$D/syn" --neurons all --samples top:1 -q

# draw
line=$("$V" trace "$D/a" --list | sed -n 2p)
L=${line%%,*}; rest=${line#*,}; N=${rest%%,*}; rest=${rest#*,}; S=${rest%%,*}
out=$("$V" draw "$D/a" --neuron "$L:$N" --sample "$S" -o "$D/pics" --mode jet --heat svg); check "draw" test $? -eq 0
check "draw wrote png + svg" test "$(wc -l <<<"$out")" -eq 2
check "png file" test -s "$D/pics/L${L}_N${N}_S${S}_jet.png"
check "svg file" grep -q '^<svg' "$D/pics/L${L}_N${N}_S${S}_heat.svg"
bad "draw: pair not traced" "not traced" "$V" draw "$D/a" --neuron "$L:$N" --sample 59999 -o "$D/pics"
bad "draw: bad mode" "modulated, raw, jet" "$V" draw "$D/a" --neuron "$L:$N" --sample "$S" -o "$D/pics" --mode x
bad "draw: bad neuron" "LAYER:NEURON" "$V" draw "$D/a" --neuron "x" --sample "$S" -o "$D/pics"
bad "draw: no traces" "no traces" "$V" draw "$D/run" --neuron "0:1" --sample 0 -o "$D/pics"
finish
