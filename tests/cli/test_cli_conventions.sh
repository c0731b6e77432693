#!/usr/bin/env bash
# CLI conventions (docs/cli.md) for EVERY command `vlmn help` lists, so commands added
# later are covered without touching this file: --help / -h print the usage on stdout and
# exit 0; an unknown option (one of the command's own long options with a letter added)
# exits 2 with "unknown option --X (did you mean --Y?)"; `--` ends the options (a
# following "--help" or "-x" is a positional argument, never an option). Then `-` for
# stdin/stdout where commands read or write a file: tokenize TEXT, preprocess --image
# and -o, export -o.
set -u
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
T=$(scratch)

cmds=$("$V" help | awk '/^commands:/{f=1;next} f{print $1}')
check "help lists commands" test -n "$cmds"
for c in $cmds; do
  for h in --help -h; do
    out=$("$V" "$c" "$h" 2>"$T/err"); rc=$?
    check "$c $h exits 0" test "$rc" -eq 0
    check "$c $h prints usage on stdout" grep -q "^usage: vlmn $c" <<<"$out"
    check "$c $h: nothing on stderr" test ! -s "$T/err"
  done
  # The first long option named in the usage, misspelt by one added letter.
  opt=$("$V" help "$c" | sed -n '/^usage:/,$p' | grep -o -- '--[a-z][a-z0-9-]*' | grep -vx -- '--help' | head -1)
  if [ -n "$opt" ]; then
    err=$("$V" "$c" "${opt}q" 2>&1 >/dev/null); rc=$?
    check "$c ${opt}q exits 2" test "$rc" -eq 2
    check "$c ${opt}q suggests $opt" grep -qxF "vlmn $c: unknown option ${opt}q (did you mean $opt?)" <<<"$err"
  fi
  err=$("$V" "$c" --zzzz-no-such-option 2>&1 >/dev/null); rc=$?
  check "$c --zzzz exits 2" test "$rc" -eq 2
  check "$c --zzzz names it" grep -q "unknown option --zzzz-no-such-option" <<<"$err"
  # After --: not options. "--help" is not help, "-x..." is not an unknown option.
  out=$("$V" "$c" -- --help 2>"$T/err" </dev/null)
  check "$c -- --help is no help" bash -c '! grep -q "^usage: vlmn" <<<"$1"' _ "$out"
  "$V" "$c" -- -zzzz-positional >/dev/null 2>"$T/err" </dev/null
  check "$c -- -x is positional" bash -c '! grep -q "unknown option" "$1"' _ "$T/err"
done

"$V" --version | grep -q '^vlmn [0-9]'; check "--version" test $? -eq 0
check "version = --version" test "$("$V" version)" = "$("$V" --version)"
"$V" version extra 2>/dev/null; check "version extra exits 2" test $? -eq 2
"$V" --frobnicate 2>/dev/null; check "unknown top-level option exits 2" test $? -eq 2

# -- and - with tokenize: a text that starts with a dash, and the same text from stdin.
"$V" make-model -q -o "$T/m" >/dev/null
M="$T/m-text.gguf"
a=$("$V" tokenize -m "$M" -- "-x --y"); rc=$?
check "tokenize -- -text exits 0" test "$rc" -eq 0
b=$(printf '%s' "-x --y" | "$V" tokenize -m "$M" -)
check "tokenize - reads stdin" test -n "$a" -a "$a" = "$b"
c=$("$V" tokenize -- "-x --y" -m "$M" 2>/dev/null); rc=$?
check "-m after -- is not an option" test "$rc" -ne 0

# preprocess: --image - (stdin) and -o - (stdout) give the same bytes as files.
IMG="$VLMN_TEST_DATA/image/j_base420.jpg"
MM="$VLMN_TEST_DATA/image/mmproj_s30.gguf"
"$V" preprocess --mmproj "$MM" --image "$IMG" -o "$T/a.npy"
"$V" preprocess --mmproj "$MM" --image - -o - <"$IMG" >"$T/b.npy"
check "preprocess - / -o - exits 0" test $? -eq 0
check "preprocess stdin/stdout = files" cmp -s "$T/a.npy" "$T/b.npy"

# export -o - = stdout.
mkdir -p "$T/img"
printf '[{"id":"a","image":"a.jpg","conversations":[{"from":"human","value":"<image>\\nQ"},{"from":"gpt","value":"A b"}]},{"id":"b","image":"a.jpg","conversations":[{"from":"human","value":"<image>\\nQ"},{"from":"gpt","value":"C"}]}]' >"$T/data.json"
echo x >"$T/img/a.jpg"
"$V" record --synthetic 2x8:3:4 --data "$T/data.json" --images "$T/img" --top-n 2 -q -o "$T/run"
check "synthetic run" test $? -eq 0
"$V" export "$T/run" neurons -o - >"$T/e1.csv"
check "export -o - exits 0" test $? -eq 0
"$V" export "$T/run" neurons >"$T/e2.csv"
check "export -o - = stdout" cmp -s "$T/e1.csv" "$T/e2.csv"
check "export wrote rows" test "$(wc -l <"$T/e1.csv")" -gt 1
finish
