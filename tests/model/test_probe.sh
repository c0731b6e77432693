# `vlmn probe` command line: outputs on the tiny fixture models, and one-line errors
# (exit 1) for bad files, an image that fails to load and a prompt without <image>.
. "$(dirname "$0")/../lib.sh"
D="$VLMN_TEST_DATA/engine"
S=$(scratch)
M=(-m "$D/f32.text.gguf" --mmproj "$D/f32.mmproj.gguf")

# one line on stderr, exit status $1
fails_with() {
  local want=$1; shift
  "$VLMN_BIN" probe "$@" 2>"$S/err" >"$S/out"; local rc=$?
  [ "$rc" -eq "$want" ] && [ "$(wc -l <"$S/err")" -eq 1 ] && grep -q '^vlmn probe: ' "$S/err" && [ ! -s "$S/out" ]
}

check "runs" "$VLMN_BIN" probe "${M[@]}" --image "$D/img_wide.png" --question "What?" --answer "A dog." -o "$S/ok"
check "activations written" test -s "$S/ok/activations.npy"
check "tokens written" grep -q '"modality":"image"' "$S/ok/tokens.json"
check "no temporary left" bash -c "! ls '$S/ok' | grep -q tmp"
check "npy header" bash -c "head -c 128 '$S/ok/activations.npy' | grep -q \"'shape': (3, \""
check "layer subset" "$VLMN_BIN" probe "${M[@]}" --image "$D/img_wide.png" --template plain --answer "A dog." --layers 1-2 -o "$S/sub"
check "layer subset shape" bash -c "head -c 128 '$S/sub/activations.npy' | grep -q \"'shape': (2, \""

echo "not an image" >"$S/bad.png"
: >"$S/empty.gguf"
check "bad image" fails_with 1 "${M[@]}" --image "$S/bad.png" --question q --answer a -o "$S/x"
check "missing image" fails_with 1 "${M[@]}" --image "$S/none.png" --question q --answer a -o "$S/x"
check "prompt without <image>" fails_with 1 "${M[@]}" --image "$D/img_wide.png" --prompt "USER: hi ASSISTANT:" -o "$S/x"
check "two <image>" fails_with 1 "${M[@]}" --image "$D/img_wide.png" --prompt "<image> and <image>" -o "$S/x"
check "empty text model" fails_with 1 -m "$S/empty.gguf" --mmproj "$D/f32.mmproj.gguf" --image "$D/img_wide.png" --question q --answer a -o "$S/x"
check "mismatched pair" fails_with 1 -m "$D/f32.text.gguf" --mmproj "$D/bf16.mmproj.gguf" --image "$D/img_wide.png" --question q --answer a -o "$S/x"
check "mismatch names both" bash -c "grep -q f32.text.gguf '$S/err' && grep -q bf16.mmproj.gguf '$S/err'"
check "swapped files" fails_with 1 -m "$D/f32.mmproj.gguf" --mmproj "$D/f32.text.gguf" --image "$D/img_wide.png" --question q --answer a -o "$S/x"
check "no output on failure" test ! -e "$S/x/activations.npy"
check "bad layers" fails_with 2 "${M[@]}" --image "$D/img_wide.png" --question q --answer a --layers 0-9 -o "$S/x"
check "bad hook" fails_with 2 "${M[@]}" --image "$D/img_wide.png" --question q --answer a --hook relu -o "$S/x"
check "bad template" fails_with 2 "${M[@]}" --image "$D/img_wide.png" --question q --answer a --template chatml -o "$S/x"
check "missing -o" bash -c "'$VLMN_BIN' probe ${M[*]} --image '$D/img_wide.png' --question q --answer a 2>/dev/null; [ \$? -eq 2 ]"
finish
