#!/usr/bin/env bash
# vlmn browse on a LLaVA-7B-sized run (issue 13 goal: a neuron page and a filtered table of
# a 352,256-neuron run each served in < 50 ms). The run is synthesized: a tiny real run
# gives the schema (`vlmn record`, `classify`, and `score`, which creates the explanation
# tables), then SQL fills it to 32 layers x 11,008 neurons: neuron stats, a classification
# (12% visual, 55% text, 20% multimodal, 13% unknown), top-20 lists over 23,000 samples,
# explanations and scores for 10% of the neurons, 5 simulations each for 1%. Then
# `vlmn browse --port 0` serves it and curl times REPS requests of each kind (the time to
# the last byte, curl's time_total: median, p90, max) and reads the server's own CPU time
# per request from /proc/PID/stat (utime + stime, robust to other jobs on the machine).
# A 404 page (`/nope`: parse + error page, no SQL) is the baseline measured in the same
# run; ratios are against its median. First the start without an index file (indexed in
# memory), then `vlmn browse --index` and the start with it; the requests are served from
# the index file. Deterministic data.
# usage: [REUSE=1] bash bench/browse.sh [VLMN] [DIR] [REPS]
set -euo pipefail
V=${1:-build/vlmn}; D=${2:-/tmp/vlmn-bench-browse}; REPS=${3:-50}
L=32; F=11008; TOP=20; NS=23000
q() { sqlite3 "$D/run/run.sqlite" "$1"; }
now() { date +%s.%N; }
if [ "${REUSE:-0}" = 1 ] && [ -s "$D/run/run.sqlite" ]; then   # REUSE=1: keep DIR's synthesized run
  rm -f "$D/run/browse-index.sqlite"
else
rm -rf "$D"; mkdir -p "$D"
"$V" make-model --preset tiny --seed 4 -q -o "$D/tiny" >/dev/null
"$V" make-dataset -n 3 --seed 8 --format jsonl -o "$D/ds" >/dev/null
"$V" record -m "$D/tiny-text.gguf" --mmproj "$D/tiny-mmproj.gguf" --data "$D/ds/data.jsonl" --images "$D/ds" \
  --top-n 2 -t 1 -q -o "$D/run" >/dev/null
"$V" classify "$D/run" >/dev/null
"$V" score "$D/run" >/dev/null 2>&1   # creates explanations, simulations, scores (empty)
t0=$(now)
sqlite3 "$D/run/run.sqlite" >/dev/null <<SQL
PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
BEGIN;
DELETE FROM samples; DELETE FROM neurons; DELETE FROM top; DELETE FROM classification;
DELETE FROM explanations; DELETE FROM simulations; DELETE FROM scores;
UPDATE run SET value = '$L' WHERE key = 'n_layers';
UPDATE run SET value = '$F' WHERE key = 'n_ff';
UPDATE run SET value = '$TOP' WHERE key = 'top_n';
UPDATE run SET value = '$NS' WHERE key IN ('n_samples', 'n_ok', 'data_elements');
UPDATE classification_params SET n_layers = $L, n_ff = $F;
-- h(k, salt): a deterministic hash of k in [0, 1)
CREATE TEMP TABLE ks (k INTEGER PRIMARY KEY, u1 REAL, u2 REAL, u3 REAL, u4 REAL);
WITH RECURSIVE c(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM c WHERE k < $L * $F - 1)
INSERT INTO ks SELECT k, ((k + 11) * 2654435761 % 4294967291) / 4294967291.0,
  ((k + 23) * 2246822519 % 4294967279) / 4294967279.0, ((k + 37) * 3266489917 % 4294967231) / 4294967231.0,
  ((k + 51) * 668265263 % 4294967197) / 4294967197.0 FROM c;
WITH RECURSIVE c(s) AS (SELECT 0 UNION ALL SELECT s + 1 FROM c WHERE s < $NS - 1)
INSERT INTO samples SELECT s, printf('synth-%06d', s), printf('images/%06d.jpg', s), 'ok', NULL, 576, 120 FROM c;
INSERT INTO neurons SELECT k / $F, k % $F, 0.5 + 10 * u1, -0.3 * u2, 0.01 * u3, $NS * 696 FROM ks;
CREATE TEMP TABLE lab AS SELECT k, CASE WHEN u2 < 0.12 THEN 0 WHEN u2 < 0.67 THEN 1 WHEN u2 < 0.87 THEN 2 ELSE 3 END AS t,
  0.5 + 0.5 * u3 AS p FROM ks;
INSERT INTO classification SELECT k / $F, k % $F,
  CASE WHEN t = 0 THEN p ELSE (1 - p) / 3 END, CASE WHEN t = 1 THEN p ELSE (1 - p) / 3 END,
  CASE WHEN t = 2 THEN p ELSE (1 - p) / 3 END, CASE WHEN t = 3 THEN p ELSE (1 - p) / 3 END,
  CASE t WHEN 0 THEN 'visual' WHEN 1 THEN 'text' WHEN 2 THEN 'multimodal' ELSE 'unknown' END, $TOP,
  CAST(round($TOP * CASE WHEN t = 0 THEN p ELSE (1 - p) / 3 END) AS INT),
  CAST(round($TOP * CASE WHEN t = 1 THEN p ELSE (1 - p) / 3 END) AS INT),
  CAST(round($TOP * CASE WHEN t = 2 THEN p ELSE (1 - p) / 3 END) AS INT),
  CAST(round($TOP * CASE WHEN t = 3 THEN p ELSE (1 - p) / 3 END) AS INT), 0.5 + 10 * u1 FROM lab JOIN ks USING (k);
WITH RECURSIVE r(r) AS (SELECT 1 UNION ALL SELECT r + 1 FROM r WHERE r < $TOP)
INSERT INTO top SELECT k / $F, k % $F, r, (k * 7919 + r * 104729) % $NS, (0.5 + 10 * u1) * (1 - 0.02 * (r - 1))
  FROM ks, r ORDER BY k, r;
CREATE TEMP TABLE words (i INTEGER PRIMARY KEY, w TEXT);
INSERT INTO words (w) VALUES ('red'),('green'),('blue'),('yellow'),('circle'),('square'),('triangle'),('dog'),
  ('cat'),('horse'),('car'),('bus'),('tree'),('grass'),('sky'),('water'),('snow'),('street'),('sign'),('text'),
  ('letters'),('numbers'),('faces'),('hands'),('food'),('pizza'),('plate'),('table'),('chair'),('window'),
  ('door'),('wall'),('stripes'),('dots'),('edges'),('corners'),('shadows'),('light'),('dark'),('metal'),
  ('wood'),('glass'),('clouds'),('birds'),('fur'),('wheels'),('screens'),('clocks');
INSERT INTO explanations SELECT k / $F, k % $F, 'top', 'bench-llm', CASE WHEN t = 1 THEN 'none' ELSE 'modulated' END,
  CASE t WHEN 0 THEN 'visual' WHEN 1 THEN 'text' ELSE 'multimodal' END, '[1,5,9,13,17]', 0.5 + 10 * u1,
  (SELECT w FROM words WHERE i = 1 + CAST(u4 * 48 AS INT)) || ' ' ||
  (SELECT w FROM words WHERE i = 1 + CAST(u1 * 48 AS INT)) || ' and ' ||
  (SELECT w FROM words WHERE i = 1 + (k % 48)) || ' on ' || (SELECT w FROM words WHERE i = 1 + (k / 48) % 48),
  'ok', NULL, printf('%064x', k), '{}', 900, 12, 1, 0, '2026-12-07T00:00:00Z'
  FROM ks JOIN lab USING (k) WHERE u4 < 0.10 AND t < 3;
INSERT INTO scores SELECT layer, neuron, 'top', 'bench-llm', images, 'bench-sim:json', 'pearson', kind,
  2 * ((layer * $F + neuron) * 40503 % 65521) / 65521.0 - 1, NULL, NULL, 0, 300, 0, NULL, created FROM explanations;
WITH RECURSIVE r(i, r) AS (SELECT 0, 3 UNION ALL SELECT i + 1, r + 4 FROM r WHERE i < 4)
INSERT INTO simulations SELECT e.layer, e.neuron, 'top', 'bench-llm', e.images, 'bench-sim', 'json', 'text',
  (e.layer * $F + e.neuron + r.r) % $NS, r.r, 64, zeroblob(256), zeroblob(256), 0, 'ok', NULL, NULL, 0, 0, 1, 0,
  e.created FROM explanations e, r WHERE (e.layer * $F + e.neuron) % 10 = 0;
COMMIT;
SQL
echo "synthesized in $(echo "$(now) - $t0" | bc) s"
fi
echo "run: $(q "SELECT count(*) FROM neurons") neurons, $(q "SELECT count(*) FROM top") top rows," \
     "$(q "SELECT count(*) FROM explanations") explanations, $(q "SELECT count(*) FROM scores") scores," \
     "$(q "SELECT count(*) FROM simulations") simulations; run.sqlite $(du -m "$D/run/run.sqlite" | cut -f1) MB"

start() {  # start the server, set pid, U and t_up (seconds until it printed its URL)
  rm -f "$D/url"; local t0; t0=$(now)
  "$V" browse "$D/run" --port 0 >"$D/url" 2>"$D/browse.err" & pid=$!
  for i in $(seq 1 6000); do [ -s "$D/url" ] && break; sleep 0.01; done
  t_up=$(echo "$(now) - $t0" | bc)
  U=$(head -n1 "$D/url"); U=${U%/}
  [ -n "$U" ] || { cat "$D/browse.err"; exit 1; }
}
trap 'kill $pid 2>/dev/null' EXIT
start; kill $pid; wait $pid 2>/dev/null || true
echo "start without an index file: ${t_up} s (run.sqlite read-only, index + FTS5 built in memory)"
t0=$(now); "$V" browse "$D/run" --index >/dev/null
echo "vlmn browse --index: $(echo "$(now) - $t0" | bc) s, $(du -m "$D/run/browse-index.sqlite" | cut -f1) MB"
start
echo "start with the index file: ${t_up} s"
grep -q . "$D/browse.err" && cat "$D/browse.err"

# a few neurons of each sort: explained+scored+simulated, explained+scored, plain
mapfile -t SIMN < <(q "SELECT DISTINCT layer || '/' || neuron FROM simulations ORDER BY 1 LIMIT $REPS")
mapfile -t EXPN < <(q "SELECT layer || '/' || neuron FROM explanations WHERE (layer * $F + neuron) % 10 <> 0 ORDER BY prompt_hash LIMIT $REPS")
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }   # server CPU time, clock ticks
HZ=$(getconf CLK_TCK)
time_one() { curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 30 "$U$1"; }
stats() {  # NAME CPU_MS: times (s) on stdin -> median p90 max in ms, server CPU ms per request
  sort -n | awk -v name="$1" -v cpu="$2" '{ v[NR] = $1 * 1000 } END {
    printf "%-60s %8.2f %8.2f %8.2f %8.2f\n", name, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.999)], v[NR], cpu }'
}
run_case() {  # NAME URL-GENERATOR(i)
  local name=$1 gen=$2 out codes c0 c1 urls=()
  for i in $(seq 1 "$REPS"); do urls+=("$($gen "$i")"); done
  c0=$(cpu)
  out=$(for u in "${urls[@]}"; do time_one "$u"; done)
  c1=$(cpu)
  codes=$(cut -d' ' -f1 <<<"$out" | sort -u | paste -sd,)
  cut -d' ' -f2 <<<"$out" | stats "$name [$codes]" "$(echo "scale=2; ($c1 - $c0) * 1000 / $HZ / $REPS" | bc)"
}
g_base() { echo "/nope"; }
g_neuron_sim() { echo "/neuron/${SIMN[$(( ($1 - 1) % ${#SIMN[@]} ))]}"; }
g_neuron_exp() { echo "/neuron/${EXPN[$(( ($1 - 1) % ${#EXPN[@]} ))]}"; }
g_neuron_plain() { echo "/neuron/$(( ($1 * 7) % L ))/$(( ($1 * 1543 + 5) % F ))"; }
g_api_neuron() { echo "/api/neuron/${SIMN[$(( ($1 - 1) % ${#SIMN[@]} ))]}"; }
g_table() { echo "/neurons?label=visual&p_v=0.8&sort=score&order=desc&page=$(( 45 + $1 % 10 ))"; }
g_api_table() { echo "/api/neurons?label=visual&p_v=0.8&sort=score&order=desc&page=$(( 45 + $1 % 10 ))&per=50"; }
g_table_act() { echo "/neurons?layer=$(( $1 % L ))&sort=max_act&order=desc&page=$(( 1 + $1 % 5 ))"; }
g_table_deep() { echo "/neurons?sort=p_t&order=desc&page=$(( 1000 + $1 ))"; }
g_fts() { local w=(red dog street pizza clocks glass stripes snow); echo "/neurons?q=${w[$(( $1 % 8 ))]}&sort=score&order=desc"; }
g_fts2() { local w=(red+circle dog+street pizza+plate glass+window); echo "/neurons?q=${w[$(( $1 % 4 ))]}&label=text&page=2"; }
g_overview() { echo "/"; }

for c in base base; do run_case "warm-up" g_$c >/dev/null; done
printf "%-60s %8s %8s %8s %8s\n" "request (REPS=$REPS each) [HTTP codes], ms" "median" "p90" "max" "cpu/req"
base_line=$(run_case "baseline: 404 page /nope" g_base); echo "$base_line"
base=$(awk '{ print $(NF - 3) }' <<<"$base_line")
for c in neuron_sim neuron_exp neuron_plain api_neuron table api_table table_act table_deep fts fts2 overview; do
  case $c in
    neuron_sim) n="neuron page, explained+scored+5 simulations";;
    neuron_exp) n="neuron page, explained+scored";;
    neuron_plain) n="neuron page, no explanation";;
    api_neuron) n="/api/neuron (explained+scored+simulated)";;
    table) n="table label=visual,p_v>=0.8,sort=score desc, page 45-54 x100";;
    api_table) n="/api/neurons same filter, per=50";;
    table_act) n="table layer=L, sort=max_act desc, pages 1-5";;
    table_deep) n="table all, sort=p_t desc, page 1001-1050 (offset 100k)";;
    fts) n="FTS5 search q=WORD, sort=score desc";;
    fts2) n="FTS5 search q=TWO+WORDS, label=text, page 2";;
    overview) n="overview (figures precomputed)";;
  esac
  line=$(run_case "$n" g_$c)
  med=$(awk '{ print $(NF - 3) }' <<<"$line")
  echo "$line   x$(echo "scale=1; $med / $base" | bc) baseline"
done
kill $pid; wait $pid 2>/dev/null || true
