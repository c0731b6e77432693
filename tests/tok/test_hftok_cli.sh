# vlmn tokenize with a tokenizer.json: the ids of tests/reference/hftok_ref.py's corpus
# (tests/data/hftok/hftok.corpus.tsv) for a few texts of each tokenizer, and one-line errors.
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
T="$VLMN_TEST_DATA/hftok"
S=$(scratch)
n=0
for name in llama_legacy clip gpt2 misc; do
  for text in "Hello World" "a photo of a dog" "don't" "naïve"; do
    want=$(awk -F'\t' -v n="$name" -v t="$text" '$1=="E" && $2==n && $3=="b" && $4==t {print $5; exit}' "$T/hftok.corpus.tsv")
    got=$("$V" tokenize -m "$T/$name.tokenizer.json" "$text")
    check "$name: $text" test -n "$want" -a "$got" = "$want"
    n=$((n + 1))
  done
done
check "16 texts checked" test $n -eq 16
got=$("$V" tokenize -m "$T/clip.tokenizer.json" --no-bos --json "a dog")
check "--json pieces" bash -c "echo '$got' | grep -q '\"piece\":\"a</w>\"'"
echo '{"model": {"type": "WordPiece"}}' >"$S/bad.json"
"$V" tokenize -m "$S/bad.json" x >/dev/null 2>"$S/err"; rc=$?
check "bad tokenizer.json exit 1" test $rc -eq 1
check "bad tokenizer.json one line naming the file" bash -c "[ \$(wc -l <'$S/err') -eq 1 ] && grep -q 'bad.json: model type \"WordPiece\" is not supported' '$S/err'"
finish
