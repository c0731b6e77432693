#!/usr/bin/env bash
# `vlmn info`: --json on a file made by the independent Python writer must equal the
# line tests/reference/make_gguf_fixture.py predicted; text output names architecture,
# hyperparameters, tokenizer and tensors; every hostile file exits 1 with one line
# "vlmn info: PATH: problem" on stderr; usage errors exit 2.
set -u
. "$(dirname "$0")/../lib.sh"
D="$VLMN_TEST_DATA/gguf"
T=$(scratch)

# exact JSON (run from the data folder so that "file" is the name as given)
(cd "$D" && "$VLMN_BIN" info --json fixture.gguf) >"$T/got.json" 2>"$T/err"
check "info --json exits 0" test $? -eq 0
check "info --json matches the independent writer's expectation" cmp -s "$T/got.json" "$D/fixture.info.json"
cmp -s "$T/got.json" "$D/fixture.info.json" || diff <(tr ',' '\n' <"$T/got.json") <(tr ',' '\n' <"$D/fixture.info.json") | head -20 >&2
check "info --json: nothing on stderr" test ! -s "$T/err"
check "info --json: one line per file" test "$(wc -l <"$T/got.json")" -eq 1

# two files -> two lines
"$VLMN_BIN" info --json "$D/fixture.gguf" "$D/fixture.gguf" >"$T/two.json"
check "two files give two lines" test "$(wc -l <"$T/two.json")" -eq 2

# text
"$VLMN_BIN" info "$D/fixture.gguf" >"$T/text" 2>&1
check "text exits 0" test $? -eq 0
check "text: architecture" grep -q '^architecture: llama$' "$T/text"
check "text: hyperparameter" grep -q 'llama.context_length = 4096' "$T/text"
check "text: tokenizer summary" grep -q '^tokenizer: model llama, vocab size 100, bos 1 "<s>", eos 2 "</s>", unk 0 "<unk>"' "$T/text"
check "text: tensor row" grep -Eq '^  token_embd.weight +F16 +\[100, 32\] +6400$' "$T/text"
check "text: 4-d tensor in PyTorch order" grep -Eq '^  v.patch_embd.weight +F32 +\[2, 3, 5, 7\] +840$' "$T/text"

# hostile files: exit 1, one line naming the file, nothing on stdout
n_bad=0
for f in "$D"/bad_*.gguf; do
  n_bad=$((n_bad + 1))
  "$VLMN_BIN" info "$f" >"$T/out" 2>"$T/err"
  rc=$?
  name=$(basename "$f")
  check "$name exits 1" test $rc -eq 1
  check "$name: one stderr line" test "$(wc -l <"$T/err")" -eq 1
  check "$name: message names the file" grep -q "^vlmn info: $f: " "$T/err"
  check "$name: nothing on stdout" test ! -s "$T/out"
done
check "hostile fixtures present" test $n_bad -ge 19
grep -q "key general.alignment: has type string" <("$VLMN_BIN" info "$D/bad_alignment_wrong_type.gguf" 2>&1)
check "wrong metadata type is named" test $? -eq 0
grep -q "tensor b: data at 0x20 overlaps tensor a" <("$VLMN_BIN" info "$D/bad_overlap.gguf" 2>&1)
check "overlap names both tensors" test $? -eq 0
grep -q "tensor w: unknown tensor type id 99" <("$VLMN_BIN" info "$D/bad_bad_tensor_type.gguf" 2>&1)
check "bad tensor type named" test $? -eq 0

# truncation at many offsets through the CLI
ok=1
size=$(stat -c %s "$D/fixture.gguf")
for len in 0 1 3 4 23 24 100 1000 5000 10000 $((size - 1)); do
  head -c "$len" "$D/fixture.gguf" >"$T/trunc.gguf"
  "$VLMN_BIN" info --json "$T/trunc.gguf" >/dev/null 2>"$T/err"
  [ $? -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || { ok=0; echo "truncated at $len: bad result" >&2; }
done
check "truncated copies fail cleanly" test $ok -eq 1

# a bad file among good ones: good ones still printed, exit 1
"$VLMN_BIN" info --json "$D/fixture.gguf" "$D/bad_overlap.gguf" "$D/fixture.gguf" >"$T/mix" 2>"$T/err"
check "mixed files exit 1" test $? -eq 1
check "mixed files: good ones printed" test "$(wc -l <"$T/mix")" -eq 2
"$VLMN_BIN" info "$T/does-not-exist.gguf" 2>"$T/err"
check "missing file exits 1" test $? -eq 1
check "missing file named" grep -q "^vlmn info: $T/does-not-exist.gguf: " "$T/err"

# bytes that are not UTF-8 (key "k\xff", string "v\0w\xfe") still give valid JSON:
# U+FFFD for bad bytes, \u0000 for NUL; "architecture" is null when absent
printf 'GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00k\xff\x08\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00v\x00w\xfe' >"$T/u.gguf"
(cd "$T" && "$VLMN_BIN" info --json u.gguf) >"$T/u.json"
printf '{"file":"u.gguf","version":3,"alignment":32,"architecture":null,"metadata":{"k\xef\xbf\xbd":"v\\u0000w\xef\xbf\xbd"},"tensors":[]}\n' >"$T/u.want"
check "non-UTF-8 bytes are sanitised in JSON" cmp -s "$T/u.json" "$T/u.want"

# usage
"$VLMN_BIN" info >/dev/null 2>&1
check "no file exits 2" test $? -eq 2
"$VLMN_BIN" info --bogus "$D/fixture.gguf" >/dev/null 2>&1
check "unknown option exits 2" test $? -eq 2
rm -rf "$T"
finish
