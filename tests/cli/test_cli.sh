#!/usr/bin/env bash
# CLI basics: help, version, unknown command, per-command help.
set -u
. "$(dirname "$0")/../lib.sh"
out=$("$VLMN_BIN" --version); check "version" test "${out#vlmn }" != "$out"
"$VLMN_BIN" help >/dev/null; check "help exits 0" test $? -eq 0
"$VLMN_BIN" no-such-cmd 2>/dev/null; check "unknown command exits 2" test $? -eq 2
err=$("$VLMN_BIN" no-such-cmd 2>&1 >/dev/null); check "unknown command names it" grep -q "no-such-cmd" <<<"$err"
for c in $("$VLMN_BIN" help | awk '/^commands:/{f=1;next} f{print $1}'); do
  "$VLMN_BIN" help "$c" >/dev/null; check "help $c" test $? -eq 0
done
finish
