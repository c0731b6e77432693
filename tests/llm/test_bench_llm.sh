#!/usr/bin/env bash
# `vlmn bench llm` against the tests' OpenAI-protocol server: every request answered,
# the output fields present, the server's own count agrees (no request sent twice),
# and one request in flight is not throttled by the client's poll loop (a regression:
# a 1 s poll after each completion made concurrency 1 run at 1 request/s; 100 requests
# in 30 s leaves a 10x margin on a loaded 2-core machine, so this is not a timing test).
set -u
. "$(dirname "$0")/../lib.sh"
: "${VLMN_LLM_SERVER:?VLMN_LLM_SERVER not set (libmicrohttpd missing at build time)}"
d=$(scratch)
"$VLMN_LLM_SERVER" --port-file "$d/port" 2>"$d/server.log" & spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null' EXIT
for i in $(seq 1 300); do [ -s "$d/port" ] && break; sleep 0.02; done
port=$(cat "$d/port"); url="http://127.0.0.1:$port/v1"

timeout 120 "$VLMN_BIN" bench llm --base-url "$url" --requests 400 --concurrency 16 --baseline-requests 100 \
  --width 96 --height 64 --reps 1 >"$d/out" 2>"$d/err"
check "bench llm exits 0" test $? -eq 0
cat "$d/out"
check "baseline line" grep -q "baseline, 1 in flight:  100 requests .* answered 100, failed 0" "$d/out"
check "concurrent line" grep -q "16 in flight: .* 400 requests .* answered 400, failed 0, sent 400" "$d/out"
check "ratio and CPU line" grep -q "ratio vs baseline: [0-9.]*x; client CPU [0-9.]* us/request" "$d/out"
check "prompt cost line" grep -q "explainer prompt, 5 modulated 96x64 images: [0-9.]* ms CPU .* ratio [0-9.]*x" "$d/out"
reqs=$(curl -s "http://127.0.0.1:$port/stats" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
check "server saw exactly 500 requests (got $reqs)" test "$reqs" = 500
secs=$(sed -n 's/.*baseline, 1 in flight:  100 requests in \([0-9.]*\) s.*/\1/p' "$d/out")
check "one in flight is not throttled ($secs s for 100)" awk -v s="$secs" 'BEGIN { exit !(s != "" && s < 30) }'

"$VLMN_BIN" bench llm --requests 0 >/dev/null 2>"$d/bad.err"
check "bad --requests is a usage error" test $? -eq 2
finish
