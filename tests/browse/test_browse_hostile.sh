#!/usr/bin/env bash
# vlmn browse on a tiny generated run with traces: the pages and the JSON API answer 200,
# hostile requests (traversal, encoded traversal, huge and malformed query strings, unknown
# ids) get a 4xx with a message and the server keeps running; a token string containing
# <script> (planted in the trace store) is shown escaped; the run is never written.
set -u
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
D=$(scratch)
"$V" make-model --preset tiny --seed 4 -q -o "$D/tiny"; check "make-model" test $? -eq 0
"$V" make-dataset -n 30 --seed 8 --format jsonl -o "$D/ds" >/dev/null; check "make-dataset" test $? -eq 0
"$V" record -m "$D/tiny-text.gguf" --mmproj "$D/tiny-mmproj.gguf" --data "$D/ds/data.jsonl" --images "$D/ds" \
  --top-n 10 -t 1 -q -o "$D/run"; check "record" test $? -eq 0
"$V" classify "$D/run" >/dev/null; check "classify" test $? -eq 0
"$V" trace "$D/run" --neurons "0:1" --samples "top:1-3" -t 1 -q >/dev/null; check "trace" test $? -eq 0
S=$(sqlite3 "$D/run/traces.sqlite" "SELECT sample_index FROM traces WHERE layer=0 AND neuron=1 LIMIT 1")
sqlite3 "$D/run/traces.sqlite" "UPDATE trace_tokens SET piece='<script>alert(1)</script>' WHERE sample_index=$S AND pos=1"
check "planted" test "$(sqlite3 "$D/run/traces.sqlite" "SELECT count(*) FROM trace_tokens WHERE piece LIKE '%<script>%'")" -eq 1
# a vlmn label row whose concept (from a user's concepts file) is hostile
sqlite3 "$D/run/run.sqlite" "CREATE TABLE labels (layer INTEGER NOT NULL, neuron INTEGER NOT NULL, clip TEXT NOT NULL,
  concept TEXT NOT NULL, rank INTEGER NOT NULL, score REAL, n_samples INTEGER NOT NULL, created TEXT NOT NULL,
  samples TEXT, PRIMARY KEY (layer, neuron, clip, rank)) WITHOUT ROWID;
  INSERT INTO labels VALUES (0, 1, 'c<b>', '<script>alert(2)</script>\"&''', 1, 0.5, 3, 'now', 'top:1,5,9,13,17')"
check "label planted" test "$(sqlite3 "$D/run/run.sqlite" "SELECT count(*) FROM labels WHERE concept = '<script>alert(2)</script>\"&'''")" -eq 1
sum_before=$(cat "$D/run/run.sqlite" "$D/run/traces.sqlite" | cksum)

"$V" browse "$D/run" --port 0 >"$D/url" 2>"$D/err" & pid=$!
for i in $(seq 1 200); do [ -s "$D/url" ] && break; sleep 0.05; done
U=$(head -n1 "$D/url"); U=${U%/}
check "bound to 127.0.0.1" grep -q '^http://127\.0\.0\.1:[0-9]*/$' "$D/url"

get() {  # PATH -> sets CODE, body in $D/body
  CODE=$(curl -s --path-as-is -o "$D/body" -w '%{http_code}' --max-time 10 "$U$1")
}
for p in / /neurons "/neurons?label=visual" /neuron/0/1 "/sample/$S" /api/neurons /api/neuron/0/1; do
  get "$p"; check "200 $p" test "$CODE" = 200
done
get /neuron/0/1
check "neuron page: planted token escaped" grep -q '&lt;script&gt;alert(1)&lt;/script&gt;' "$D/body"
check "neuron page: no raw <script>alert" bash -c "! grep -q '<script>alert' '$D/body'"
check "neuron page: hostile label escaped" grep -qF '&lt;script&gt;alert(2)&lt;/script&gt;&quot;&amp;&#39;</td>' "$D/body"
check "neuron page: label's clip escaped" grep -qF '<td>c&lt;b&gt;</td>' "$D/body"
get "/sample/$S"
check "sample page: no raw <script>alert" bash -c "! grep -q '<script>alert' '$D/body'"
get /api/neuron/0/1
check "api: token in JSON, not HTML" bash -c "! grep -q '<script>alert' '$D/body' || grep -q '\"<script>alert(1)<\\\\/script>\"\\|<script>alert(1)</script>' '$D/body'"
check "api: hostile label as a JSON string" grep -qF '"labels":[{"clip":"c\u003cb\u003e","rank":1,"concept":"\u003cscript\u003ealert(2)\u003c/script\u003e\"\u0026'"'"'","score":0.5,"n_samples":3}]' "$D/body"

hostile() {  # NAME PATH: a 4xx with a non-empty body, server still alive
  get "$2"
  check "$1: 4xx ($CODE)" test "$CODE" -ge 400 -a "$CODE" -lt 500
  check "$1: message" test -s "$D/body"
  check "$1: alive" kill -0 $pid
}
hostile "traversal" "/../../etc/passwd"
hostile "encoded traversal" "/%2e%2e/%2e%2e/etc/passwd"
hostile "encoded slash" "/mod/..%2f..%2frun.sqlite"
hostile "unknown page" "/nope"
hostile "unknown layer" "/neuron/99/1"
hostile "unknown neuron" "/neuron/0/999999"
hostile "non-numeric id" "/neuron/x/y"
hostile "unknown sample" "/sample/99999999"
hostile "bad sort" "/neurons?sort=%27;DROP%20TABLE%20neurons"
hostile "bad p value" "/neurons?pv_min=abc"
hostile "bad page" "/neurons?page=-5"
hostile "malformed escape" "/neurons?label=%zz%"
hostile "huge query" "/neurons?q=$(head -c 100000 /dev/zero | tr '\0' a)"
hostile "api unknown neuron" "/api/neuron/0/999999"
get "/neurons?q=%3Cscript%3E"
check "echoed query escaped" bash -c "! grep -q '<script>' '$D/body' || [ \"\$(grep -c '<script' '$D/body')\" -eq \"\$(grep -c '<script>' '$D/body')\" ] && ! grep -q 'value=\"<script>' '$D/body'"

kill $pid; wait $pid 2>/dev/null
check "run not written" test "$(cat "$D/run/run.sqlite" "$D/run/traces.sqlite" | cksum)" = "$sum_before"
check "no run.sqlite-journal/wal left" test ! -e "$D/run/run.sqlite-wal" -a ! -e "$D/run/run.sqlite-journal"
bad_err=$("$V" browse "$D/nonexistent" 2>&1 >/dev/null); check "missing run: exit 1" test $? -eq 1
check "missing run: one line" test "$(wc -l <<<"$bad_err")" -eq 1
"$V" browse "$D/run" --bogus >/dev/null 2>&1; check "unknown option: exit 2" test $? -eq 2
rm -rf "$D"
finish
