#!/usr/bin/env bash
# `vlmn tokenize`: ids must equal sentencepiece's (taken from the golden corpus), with
# BOS by the file's flag, --no-bos, --eos, --json and stdin input; bad input exits 1/2.
set -u
. "$(dirname "$0")/../lib.sh"
D="$VLMN_TEST_DATA/tok"
M="$D/bpe.gguf"
S=$(scratch)
# Expected ids for a text, straight from the sentencepiece corpus (E lines, flag "u").
want() { T="$1" awk -F'\t' '$1=="E" && $2=="u" && $3==ENVIRON["T"] {print $4; exit}' "$D/bpe.corpus.tsv"; }

w=$(want "hello world"); check "corpus has hello world" test -n "$w"
out=$("$VLMN_BIN" tokenize -m "$M" "hello world"); check "ids with BOS" test "$out" = "1 $w"
out=$("$VLMN_BIN" tokenize -m "$M" --no-bos "hello world"); check "--no-bos" test "$out" = "$w"
out=$("$VLMN_BIN" tokenize --model="$M" --eos "hello world"); check "--eos" test "$out" = "1 $w 2"
w2=$(want "café"); out=$("$VLMN_BIN" tokenize -m "$M" --no-bos "café"); check "accented" test "$out" = "$w2"
w3=$(want "<s>hello</s>"); out=$("$VLMN_BIN" tokenize -m "$M" --no-bos "<s>hello</s>")
check "control-looking text is plain text" test -n "$w3" -a "$out" = "$w3"
out=$(printf 'hello world' | "$VLMN_BIN" tokenize -m "$M" -); check "stdin" test "$out" = "1 $w"
# stdin keeps bytes exactly: "a\n" is "a" then a newline token
wn=$(want 'line1\nline2\nline3\n'); out=$(printf 'line1\nline2\nline3\n' | "$VLMN_BIN" tokenize -m "$M" --no-bos -)
check "stdin keeps newlines" test -n "$wn" -a "$out" = "$wn"
out=$("$VLMN_BIN" tokenize -m "$M" --no-bos ""); check "empty text" test -z "$out"
out=$("$VLMN_BIN" tokenize -m "$M" ""); check "empty text with BOS" test "$out" = "1"
js=$("$VLMN_BIN" tokenize -m "$M" --json "hello world")
check "json starts with BOS" grep -q '^\[{"id":1,"piece":"<s>"},{"id":' <<<"$js"
n_ids=$(grep -o '"id":' <<<"$js" | wc -l); check "json has every id" test "$n_ids" -eq $(( $(wc -w <<<"$w") + 1 ))
js=$("$VLMN_BIN" tokenize -m "$M" --json --no-bos "$(printf '\t')")
check "json escapes pieces" grep -q '"piece":"<0x09>"' <<<"$js"

"$VLMN_BIN" tokenize -m "$M" >/dev/null 2>&1; check "no TEXT exits 2" test $? -eq 2
"$VLMN_BIN" tokenize "x" >/dev/null 2>&1; check "no model exits 2" test $? -eq 2
"$VLMN_BIN" tokenize -m "$M" --bogus x >/dev/null 2>&1; check "unknown option exits 2" test $? -eq 2
err=$("$VLMN_BIN" tokenize -m "$S/none.gguf" x 2>&1 >/dev/null); rc=$?
check "missing file exits 1" test $rc -eq 1
check "missing file is named" grep -q "none.gguf" <<<"$err"
printf 'GGUF\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' > "$S/empty.gguf"
err=$("$VLMN_BIN" tokenize -m "$S/empty.gguf" x 2>&1 >/dev/null); rc=$?
check "GGUF without tokenizer exits 1" test $rc -eq 1
check "names the missing key" grep -q "tokenizer.ggml.model" <<<"$err"
finish
