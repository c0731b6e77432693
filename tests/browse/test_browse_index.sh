#!/usr/bin/env bash
# vlmn browse --index: RUN/browse-index.sqlite gives the same pages and API answers as the
# index built in memory (the table's score is the Pearson one, a detection AUROC is only on
# the neuron page); once the run changes (an explanation added) the file is no longer
# used (a note on stderr) and the new explanation is found; a corrupt index file is
# ignored the same way; neither the server nor --index writes run.sqlite, and the server
# never writes the index file.
set -u
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
D=$(scratch)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null' EXIT
"$V" make-model --preset tiny --seed 4 -q -o "$D/tiny"; check "make-model" test $? -eq 0
"$V" make-dataset -n 12 --seed 8 --format jsonl -o "$D/ds" >/dev/null; check "make-dataset" test $? -eq 0
"$V" record -m "$D/tiny-text.gguf" --mmproj "$D/tiny-mmproj.gguf" --data "$D/ds/data.jsonl" --images "$D/ds" \
  --top-n 5 -t 1 -q -o "$D/run"; check "record" test $? -eq 0
"$V" classify "$D/run" >/dev/null; check "classify" test $? -eq 0
"$V" score "$D/run" >/dev/null 2>&1; check "explanation tables created" sqlite3 "$D/run/run.sqlite" "SELECT 1 FROM explanations LIMIT 0"
xins() {  # LAYER NEURON TEXT CREATED: one explanation row, as vlmn explain stores it (docs/run-format.md)
  sqlite3 "$D/run/run.sqlite" "INSERT INTO explanations VALUES ($1, $2, 'top', 'test-llm', 'none', 'text', '[1]', 1.0,
    '$3', 'ok', NULL, 'h$1-$2', '{}', 1, 1, 1, 0, '$4')"
}
xins 0 3 "zebra crossings and striped shirts" "2026-01-01T00:00:00Z"
sins() {  # LAYER NEURON SCORER SCORE: one score row (docs/run-format.md)
  sqlite3 "$D/run/run.sqlite" "INSERT INTO scores (layer, neuron, sampling, explainer, images, simulator, scorer, kind,
    score, n_visual, n_text, n_mismatch, created) VALUES ($1, $2, 'top', 'test-llm', 'none', 'sim', '$3', 'text', $4,
    0, 10, 0, '2026-01-01T00:00:00Z')"
}
sins 0 3 pearson 0.25
sins 0 4 detection 0.9   # an AUROC: not a table score

serve() {  # start the server; sets pid, U (url emptied first: the background job's own
  # truncation may come after the wait below has seen the previous server's URL)
  : >"$D/url"
  "$V" browse "$D/run" --port 0 >"$D/url" 2>"$D/err" & pid=$!
  for i in $(seq 1 400); do [ -s "$D/url" ] && break; sleep 0.025; done
  U=$(head -n1 "$D/url"); U=${U%/}
}
stop() { kill $pid; wait $pid 2>/dev/null; pid=; }
pages=("/api/neurons?sort=max_act&order=desc&per=500" "/api/neurons?label=text&sort=p_t&order=desc&page=2&per=7"
       "/api/neurons?q=zebra" "/api/neurons?score=0" "/neurons?sort=p_v&order=asc&per=50" "/neuron/0/3" "/api/neuron/0/4" "/")
fetch() {  # DIR: every page's body into DIR/N
  mkdir -p "$1"
  local i=0
  for p in "${pages[@]}"; do i=$((i + 1)); curl -s --max-time 10 -o "$1/$i" "$U$p"; done
}
sum_run=$(cksum <"$D/run/run.sqlite")

serve; fetch "$D/mem"; stop
check "in memory: no note" test ! -s "$D/err"
check "in memory: search finds the explanation" grep -q '"layer":0,"neuron":3,.*"explanation":"zebra crossings' "$D/mem/3"
check "table score: the Pearson score only" grep -q '^{"total":1,.*"layer":0,"neuron":3,.*"score":0.25}\]}$' "$D/mem/4"
check "neuron page lists the detection score" grep -q '"scorer":"detection","kind":"text","score":0.9,' "$D/mem/7"

out=$("$V" browse "$D/run" --index); check "--index exit 0" test $? -eq 0
check "--index prints the file" test "$out" = "$D/run/browse-index.sqlite"
check "index file written" test -s "$D/run/browse-index.sqlite"
check "no temporary file left" test ! -e "$D/run/browse-index.sqlite.tmp"
check "--index leaves run.sqlite as it was" test "$(cksum <"$D/run/run.sqlite")" = "$sum_run"
sum_idx=$(cksum <"$D/run/browse-index.sqlite")

serve; fetch "$D/file"; stop
check "from file: no note" test ! -s "$D/err"
for i in $(seq 1 ${#pages[@]}); do
  check "from file = in memory: ${pages[$((i - 1))]}" cmp -s "$D/mem/$i" "$D/file/$i"
done

# the run changes: a new explanation; the file no longer matches and is not used
xins 1 5 "purple umbrellas" "2026-02-01T00:00:00Z"
serve; curl -s -o "$D/stale" "$U/api/neurons?q=umbrellas"; stop
check "stale: note names --index" grep -q "browse-index.sqlite no longer matches the run.*--index" "$D/err"
check "stale: new explanation found" grep -q '"layer":1,"neuron":5,.*"explanation":"purple umbrellas"' "$D/stale"
check "stale: file untouched by the server" test "$(cksum <"$D/run/browse-index.sqlite")" = "$sum_idx"
"$V" browse "$D/run" --index >/dev/null; check "refresh --index" test $? -eq 0
serve; curl -s -o "$D/fresh" "$U/api/neurons?q=umbrellas"; stop
check "refreshed: no note" test ! -s "$D/err"
check "refreshed: new explanation found" grep -q '"layer":1,"neuron":5,' "$D/fresh"

# a corrupt index file is ignored (note), the pages still answer
head -c 4096 /dev/urandom >"$D/run/browse-index.sqlite"
serve; code=$(curl -s -o "$D/c" -w '%{http_code}' "$U/api/neurons?q=umbrellas"); stop
check "corrupt index: note" grep -q "no longer matches" "$D/err"
check "corrupt index: 200" test "$code" = 200
check "corrupt index: answer from memory" grep -q '"layer":1,"neuron":5,' "$D/c"

"$V" browse "$D/run" --index --export "$D/x" >/dev/null 2>&1; check "--index with --export: usage (2)" test $? -eq 2
err=$("$V" browse "$D/nope" --index 2>&1 >/dev/null); check "--index on a missing run: exit 1" test $? -eq 1
check "--index on a missing run: one line" test "$(wc -l <<<"$err")" -eq 1
check "server never wrote run.sqlite (besides the test's inserts)" test ! -e "$D/run/run.sqlite-journal" -a ! -e "$D/run/run.sqlite-wal"
rm -rf "$D"
finish
