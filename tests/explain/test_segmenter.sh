#!/usr/bin/env bash
# Visual simulation through the segmenter protocol on the planted model, against the
# oracle segmenter (tests/explain/seg_server.c) that serves make-dataset's ground-truth
# masks for the shapes a prompt names. The planted visual neurons fire on one colour's
# patches: the true explanation ("red shapes") must score high, a wrong colour near 0.
# Also: injected faults (500, timeout, malformed RLE, wrong-size mask) are retried and
# change no score; a persistently wrong-size image fails its items with the reason and
# nothing else, and a rerun asks only for those; PNG and uncompressed-count masks give
# the same scores; an LLM key in the environment never reaches the segmenter; prompts
# arrive lowercase with a final "." (the server checks every request).
set -u
. "$(dirname "$0")/../lib.sh"
: "${VLMN_SEG_SERVER:?VLMN_SEG_SERVER not set (libmicrohttpd missing at build time)}"
V=$VLMN_BIN
d=$(scratch)
export OPENAI_API_KEY="sk-must-not-reach-the-segmenter"
spid=
start() { # start ARGS...: the oracle on a fresh port -> $url
  stop
  rm -f "$d/port"
  "$VLMN_SEG_SERVER" --dataset "$d/data" --port-file "$d/port" "$@" 2>>"$d/server.log" & spid=$!
  for i in $(seq 1 500); do [ -s "$d/port" ] && break; sleep 0.02; done
  url="http://127.0.0.1:$(cat "$d/port")"
}
stop() { [ -n "$spid" ] && { kill $spid 2>/dev/null; wait $spid 2>/dev/null; }; spid=; }
trap stop EXIT
stat() { curl -s "$url/stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
q() { sqlite3 "$d/run/run.sqlite" "$1"; }

planted_run "$d" 60
check "shapes.json carries RLE masks" grep -q '"counts":' "$d/data/shapes.json"
# the planted visual neurons and their colours (from the planted list, not from vlmn)
planted_neurons "$d" visual > "$d/vis.txt"
nvis=$(wc -l < "$d/vis.txt")
check "planted visual neurons found" test "$nvis" -ge 4
spec=$(awk '{printf "%s%s:%s", (NR > 1 ? ";" : ""), $1, $2}' "$d/vis.txt")
"$V" trace "$d/run" --neurons "$spec" --samples top:3,7,11,15,19 -q >/dev/null 2>&1; check "trace" test $? -eq 0
"$V" score "$d/run" >/dev/null; check "tables created" test $? -eq 0
# explanations: the true colour, and the next neuron's (another) colour
colours=(red green blue yellow cyan magenta)
while read -r L N col; do
  for i in "${!colours[@]}"; do [ "${colours[$i]}" = "$col" ] && wrong=${colours[$(( (i + 1) % 6 ))]}; done
  for e in "truth:$col shapes" "wrong:$wrong shapes"; do
    q "INSERT INTO explanations (layer, neuron, sampling, explainer, images, kind, samples, max_act, text, status,
       prompt_hash, settings, created) VALUES ($L, $N, 'top', '${e%%:*}', 'modulated', 'visual', '[]', 1,
       '  ${e#*:}  ', 'ok', '', '{}', 'now')"
  done
done < "$d/vis.txt"

start
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --explainer truth >/dev/null 2>"$d/sim.err"
check "simulate exit 0" test $? -eq 0
check "5 samples per neuron" grep -q "$((5 * nvis)) samples simulated now, 0 failed" "$d/sim.err"
# identical (image, prompt) pairs of two neurons of one colour are one request
pairs=$(q "SELECT COUNT(DISTINCT s.sample_index || '/' || e.text) FROM simulations s JOIN explanations e
  USING (layer, neuron, sampling, explainer, images) WHERE s.explainer='truth'")
check "one request per (image, explanation)" test "$(stat requests)" -eq "$pairs"
check "masks were served" test "$(stat masks)" -gt 0
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --explainer wrong >/dev/null 2>&1
check "simulate wrong" test $? -eq 0
check "rows are visual simulations" test "$(q "SELECT COUNT(*) FROM simulations WHERE simulator='segmenter-half' AND
  mode='segmenter' AND modality='visual' AND status='ok' AND length(sim) = length(real)")" -eq "$((10 * nvis))"
"$V" score "$d/run" >/dev/null; check "score" test $? -eq 0
low=$(q "SELECT COUNT(*) FROM scores WHERE explainer='truth' AND (score IS NULL OR score < 0.8)")
check "true explanations score >= 0.8" test "$low" -eq 0
check "a score per visual neuron" test "$(q "SELECT COUNT(*) FROM scores WHERE explainer='truth' AND
  simulator='segmenter-half:segmenter' AND score_visual = score")" -eq "$nvis"
hi=$(q "SELECT COUNT(*) FROM scores WHERE explainer='wrong' AND abs(coalesce(score, 0)) > 0.3")
check "wrong explanations score near 0" test "$hi" -eq 0
echo "mean score truth / wrong: $(q "SELECT printf('%.3f %.3f', (SELECT avg(score) FROM scores WHERE explainer='truth'),
  (SELECT avg(coalesce(score, 0)) FROM scores WHERE explainer='wrong'))")"
r0=$(stat requests)
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" >/dev/null 2>&1
check "rerun asks nothing" test "$(stat requests)" -eq "$r0"
check "no violation (hygiene, no key)" test "$(stat violations)" -eq 0
check "prompts arrive clean" sh -c "curl -s '$url/stats' | grep -q '\"red shapes.\":'"
truth() { q "SELECT group_concat(printf('%.6f', score), ',') FROM (SELECT score FROM scores WHERE explainer='truth' AND
  simulator='$1:segmenter' ORDER BY layer, neuron)"; }
base=$(truth segmenter-half)

# faults on the first try of every request: all retried, the same scores
start --faults --slow 3
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --explainer truth --simulator segfault --no-cache \
  --timeout 1 --concurrency 8 >/dev/null 2>"$d/fault.err"
check "faults: exit 0" test $? -eq 0
check "faults: nothing failed" grep -q "$((5 * nvis)) samples simulated now, 0 failed" "$d/fault.err"
check "faults: injected" test "$(stat faults)" -ge 4
check "faults: retried" grep -Eq "retries [1-9]" "$d/fault.err"
check "faults: a timeout among them" grep -Eq "timeouts [1-9]" "$d/fault.err"
check "faults: malformed replies retried" grep -Eq "malformed [1-9]" "$d/fault.err"
"$V" score "$d/run" >/dev/null
check "faults: same scores" test "$(truth segfault)" = "$base"

# one image always answered at the wrong size: its items fail with the reason, the rest land
smp=$(q "SELECT sample_index FROM simulations WHERE explainer='truth' AND simulator='segmenter-half' LIMIT 1")
nbad=$(q "SELECT COUNT(*) FROM simulations WHERE explainer='truth' AND simulator='segmenter-half' AND sample_index=$smp")
start --bad-image "$(printf 'planted-%06d' "$smp")"
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --explainer truth --simulator segbad --no-cache \
  --max-attempts 2 >/dev/null 2>"$d/bad.err"
check "bad image: exit 1" test $? -eq 1
check "bad image: only its items failed" grep -q "$((5 * nvis - nbad)) samples simulated now, $nbad failed" "$d/bad.err"
check "bad image: reason stored" test "$(q "SELECT COUNT(*) FROM simulations WHERE simulator='segbad' AND
  status='failed' AND sample_index=$smp AND error LIKE '%but the image is%'")" -eq "$nbad"
check "bad image: reason reported" grep -q "sample $smp failed: .*image is" "$d/bad.err"
nreq=$(q "SELECT COUNT(DISTINCT e.text) FROM simulations s JOIN explanations e
  USING (layer, neuron, sampling, explainer, images) WHERE s.simulator='segbad' AND s.status='failed'")
start
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --explainer truth --simulator segbad --no-cache \
  >/dev/null 2>"$d/bad2.err"
check "bad image: rerun exit 0" test $? -eq 0
check "bad image: rerun asks only the failed" test "$(stat requests)" -eq "$nreq"
"$V" score "$d/run" >/dev/null
check "bad image: nothing lost" test "$(truth segbad)" = "$base"

# PNG masks and uncompressed counts give the same scores
for f in png counts; do
  start --format $f
  "$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --explainer truth --simulator seg$f --no-cache \
    >/dev/null 2>&1; check "$f masks: exit 0" test $? -eq 0
done
"$V" score "$d/run" >/dev/null
check "png masks: same scores" test "$(truth segpng)" = "$base"
check "counts masks: same scores" test "$(truth segcounts)" = "$base"

# covered fraction instead of >= half
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --explainer truth --coverage fraction >/dev/null 2>&1
check "fraction: exit 0" test $? -eq 0
"$V" score "$d/run" >/dev/null
low=$(q "SELECT COUNT(*) FROM scores WHERE explainer='truth' AND simulator='segmenter-fraction:segmenter' AND
  (score IS NULL OR score < 0.8)")
check "fraction: true explanations score >= 0.8" test "$low" -eq 0
check "fraction: non-binary values" test "$(q "SELECT COUNT(*) FROM simulations WHERE simulator='segmenter-fraction'
  AND status='ok'")" -eq "$((5 * nvis))"

# usage errors
"$V" simulate "$d/run" --visual segmenter >/dev/null 2>"$d/u.err"; check "no URL: exit 2" test $? -eq 2
check "no URL: says so" grep -q "segmenter-url" "$d/u.err"
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --coverage most >/dev/null 2>&1
check "bad coverage: exit 2" test $? -eq 2
"$V" simulate "$d/run" --visual segmenter --segmenter-url "$url" --box-threshold 1.5 >/dev/null 2>&1
check "bad threshold: exit 2" test $? -eq 2
"$V" simulate "$d/run" --visual clip >/dev/null 2>&1; check "clip without --clip: exit 2" test $? -eq 2
check "server saw no violation" test "$(stat violations)" -eq 0
check "key never sent" sh -c "! grep -qa 'sk-must-not' '$d/server.log'"
finish
