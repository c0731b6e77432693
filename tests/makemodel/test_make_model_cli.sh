#!/usr/bin/env bash
# make-model / make-dataset command lines: outputs, usage errors (exit 2), failures (exit 1).
set -u
. "$(dirname "$0")/../lib.sh"
d=$(scratch)
out=$("$VLMN_BIN" make-model --seed 3 -o "$d/m"); check "make-model exits 0" test $? -eq 0
check "prints the text path" grep -qx "$d/m-text.gguf" <<<"$out"
check "prints the mmproj path" grep -qx "$d/m-mmproj.gguf" <<<"$out"
check "files exist" test -s "$d/m-text.gguf" -a -s "$d/m-mmproj.gguf"
"$VLMN_BIN" info "$d/m-text.gguf" >/dev/null; check "info reads the text file" test $? -eq 0
"$VLMN_BIN" make-model --seed 3 -q -o "$d/m2" >/dev/null
check "same seed, same text bytes" cmp -s "$d/m-text.gguf" "$d/m2-text.gguf"
check "same seed, same mmproj bytes" cmp -s "$d/m-mmproj.gguf" "$d/m2-mmproj.gguf"
"$VLMN_BIN" make-model --n-layer 2 --n-ff 33 --v-layer 1 --type f16 -o "$d/c" >/dev/null
check "custom sizes" grep -q '"llama.feed_forward_length":33' <("$VLMN_BIN" info --json "$d/c-text.gguf")
out=$("$VLMN_BIN" make-model --preset planted -o "$d/p"); check "planted exits 0" test $? -eq 0
check "planted prints the json path" grep -qx "$d/p-planted.json" <<<"$out"
usage() { "$VLMN_BIN" "$@" >/dev/null 2>&1; test $? -eq 2; }
check "no -o" usage make-model
check "unknown preset" usage make-model --preset huge -o "$d/x"
check "unknown type" usage make-model --type q4_0 -o "$d/x"
check "bad number" usage make-model --n-embd 12x -o "$d/x"
check "heads do not divide" usage make-model --n-embd 81 -o "$d/x"
check "q8_0 rows" usage make-model --type q8_0 --n-ff 45 -o "$d/x"
check "unknown option" usage make-model --bogus -o "$d/x"
check "missing value" usage make-model -o
err=$("$VLMN_BIN" make-model --n-embd 81 -o "$d/x" 2>&1 >/dev/null)
check "message names the option" grep -q -- "--n-embd 81" <<<"$err"
"$VLMN_BIN" make-model -o "$d/no/such/dir/m" >/dev/null 2>&1; check "unwritable output exits 1" test $? -eq 1
"$VLMN_BIN" make-dataset -n 3 --format jsonl -o "$d/ds" >/dev/null; check "make-dataset exits 0" test $? -eq 0
check "jsonl has 3 lines" test "$(wc -l <"$d/ds/data.jsonl")" -eq 3
check "3 images" test "$(ls "$d/ds/images" | wc -l)" -eq 3
check "dataset: bad count" usage make-dataset -n 0 -o "$d/ds"
check "dataset: bad format" usage make-dataset --format csv -o "$d/ds"
check "dataset: bad preset" usage make-dataset --preset tiny -o "$d/ds"
check "dataset: no -o" usage make-dataset
rm -rf "$d"
finish
