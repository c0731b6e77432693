# Hugging Face folders on the command line: make-model --format hf writes the same model
# as the GGUF pair (probe and record give identical output from both), vlmn info DIR
# describes LLaVA and CLIP folders, and bad uses fail with one line.
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
D="$VLMN_TEST_DATA/engine"
H="$VLMN_TEST_DATA/hf"
S=$(scratch)
fails() { local want=$1; shift; "$@" >/dev/null 2>"$S/err"; local rc=$?; [ $rc -eq "$want" ] && [ "$(wc -l <"$S/err")" -eq 1 ]; }

for ty in f32 bf16; do
  "$V" make-model --preset tiny --type $ty --seed 5 -q -o "$S/g$ty" >/dev/null
  check "make-model gguf $ty" test $? -eq 0
  "$V" make-model --preset tiny --type $ty --seed 5 --format hf -q -o "$S/h$ty" >/dev/null
  check "make-model hf $ty" test -s "$S/h$ty/model.safetensors.index.json"
  "$V" probe -m "$S/h$ty" --image "$D/img_wide.png" --question "What?" --answer "A dog." -o "$S/ph$ty" 2>/dev/null
  "$V" probe -m "$S/g$ty-text.gguf" --mmproj "$S/g$ty-mmproj.gguf" --image "$D/img_wide.png" --question "What?" \
      --answer "A dog." -o "$S/pg$ty" 2>/dev/null
  check "probe hf == gguf ($ty activations)" cmp "$S/ph$ty/activations.npy" "$S/pg$ty/activations.npy"
  check "probe hf == gguf ($ty tokens)" cmp "$S/ph$ty/tokens.json" "$S/pg$ty/tokens.json"
done
"$V" make-model --preset tiny --seed 5 --format hf -q -o "$S/h2" >/dev/null
check "same seed, same folder" cmp "$S/hf32/model-00002-of-00002.safetensors" "$S/h2/model-00002-of-00002.safetensors"

# the committed fixture folders against their GGUF pairs
"$V" probe -m "$H/llava-f16" --image "$D/img_tall.png" --template plain --answer "Two cats." -o "$S/fh" 2>/dev/null
"$V" probe -m "$D/f16.text.gguf" --mmproj "$D/f16.mmproj.gguf" --image "$D/img_tall.png" --template plain \
    --answer "Two cats." -o "$S/fg" 2>/dev/null
check "fixture f16 folder == gguf pair" cmp "$S/fh/activations.npy" "$S/fg/activations.npy"

# tokenizer.json instead of tokenizer.model: the same vocabulary converted as transformers
# does (tests/reference/hftok_ref.py) gives the same tokens and activations
mkdir -p "$S/tj" && cp "$H/llava-f16/"*.json "$H/llava-f16/model.safetensors" "$S/tj/" &&
  cp "$VLMN_TEST_DATA/hftok/tiny_llava.tokenizer.json" "$S/tj/tokenizer.json"
Q=(--image "$D/img_tall.png" --question "What is in the <s> image?  Two   cats, 42." --answer "Two cats.")
"$V" probe -m "$H/llava-f16" "${Q[@]}" -o "$S/tm" 2>/dev/null
"$V" probe -m "$S/tj" "${Q[@]}" -o "$S/tjp" 2>/dev/null
check "tokenizer.json folder: same tokens" cmp "$S/tm/tokens.json" "$S/tjp/tokens.json"
check "tokenizer.json folder: same activations" cmp "$S/tm/activations.npy" "$S/tjp/activations.npy"
"$V" info "$S/tj" >"$S/tjinfo" 2>&1
check "info tokenizer.json" grep -q "^engine: tokenizer tokenizer.json, 440 tokens" "$S/tjinfo"
echo '{"model": {"type": "Unigram", "vocab": []}}' >"$S/tj/tokenizer.json"
check "bad tokenizer.json" fails 1 "$V" probe -m "$S/tj" "${Q[@]}" -o "$S/x"
check "bad tokenizer.json message" grep -q "tj/tokenizer.json: model type \"Unigram\" is not supported" "$S/err"
rm "$S/tj/tokenizer.json"
check "no tokenizer" fails 1 "$V" probe -m "$S/tj" "${Q[@]}" -o "$S/x"
check "no tokenizer message" grep -q "no tokenizer.model or tokenizer.json" "$S/err"

# chat templates: --template auto takes the folder's (tests/data/hftok/chat, rendered by
# Jinja2 in tests/reference/chat_template_ref.py), llava-v1 when it has none
C="$VLMN_TEST_DATA/hftok/chat"
mkdir -p "$S/ct" && cp "$H/llava-f16/"* "$S/ct/" && cp "$C/llava_hf/chat_template.json" "$S/ct/"
P=(--image "$D/img_tall.png" --question "What is it?" --answer "Two cats.")
"$V" probe -m "$S/ct" "${P[@]}" --template auto -o "$S/ca" 2>/dev/null
"$V" probe -m "$S/ct" "${P[@]}" --template llava-hf -o "$S/cb" 2>/dev/null
check "auto = the folder's llava-hf template" cmp "$S/ca/tokens.json" "$S/cb/tokens.json"
check "llava-hf has no system prompt" grep -q '"pos":1,"id":[0-9]*,"piece":"▁US"' "$S/ca/tokens.json"
"$V" probe -m "$H/llava-f16" "${P[@]}" --template auto -o "$S/cc" 2>/dev/null
"$V" probe -m "$H/llava-f16" "${P[@]}" -o "$S/cd" 2>/dev/null
check "auto without a chat template = llava-v1" cmp "$S/cc/tokens.json" "$S/cd/tokens.json"
"$V" info "$S/ct" >"$S/ctinfo" 2>&1
check "info chat template" grep -q "^chat template: llava-hf (from chat_template.json)" "$S/ctinfo"
cp "$C/chatml/chat_template.json" "$S/ct/"
check "unknown chat template" fails 1 "$V" probe -m "$S/ct" "${P[@]}" --template auto -o "$S/x"
check "unknown chat template message" grep -q "chat_template.json: chat template not recognised" "$S/err"
"$V" probe -m "$S/ct" "${P[@]}" -o "$S/ce" 2>/dev/null
check "an explicit template ignores the folder's" cmp "$S/ce/tokens.json" "$S/cd/tokens.json"

# the original LLaVA layout (tests/data/hf/orig: LlavaLlamaForCausalLM + a separate CLIP
# folder, the f32 fixture's weights): the same probe output as the llava-hf folder
O="$H/orig/llava-v1.5-tiny-f32"
P=(--image "$D/img_wide.png" --question "What is it?" --answer "A dog.")
"$V" probe -m "$O" "${P[@]}" -o "$S/oa" 2>/dev/null; check "orig probe" test $? -eq 0
"$V" probe -m "$H/llava-f32" "${P[@]}" -o "$S/ob" 2>/dev/null
check "orig layout == llava-hf layout (activations)" cmp "$S/oa/activations.npy" "$S/ob/activations.npy"
check "orig layout == llava-hf layout (tokens)" cmp "$S/oa/tokens.json" "$S/ob/tokens.json"
mkdir -p "$S/o" && cp -r "$O" "$S/o/llava" && cp -r "$H/orig/clip-vit-tiny" "$S/o/myclip"
check "orig without its CLIP" fails 1 "$V" probe -m "$S/o/llava" "${P[@]}" -o "$S/x"
check "orig without its CLIP message" grep -q "vision tower openai/clip-vit-tiny not found .*give --clip DIR" "$S/err"
"$V" probe -m "$S/o/llava" --clip "$S/o/myclip" "${P[@]}" -o "$S/oc" 2>/dev/null
check "orig --clip DIR" cmp "$S/oc/activations.npy" "$S/ob/activations.npy"
check "--clip with the llava-hf layout" fails 1 "$V" probe -m "$H/llava-f32" --clip "$S/o/myclip" "${P[@]}" -o "$S/x"
"$V" info "$O" >"$S/oinfo" 2>&1; check "info orig exit" test $? -eq 0
check "info orig tower" grep -q "^vision tower: .*clip-vit-tiny (mm_vision_tower openai/clip-vit-tiny" "$S/oinfo"
check "info orig engine" grep -q "^engine: clip 4 blocks stored, 3 run (vision_feature_layer -2)" "$S/oinfo"
mkdir -p "$S/pk" && cp "$O/config.json" "$O/tokenizer.model" "$S/pk/" && echo x >"$S/pk/pytorch_model-00001-of-00002.bin"
check "pickles only" fails 1 "$V" probe -m "$S/pk" "${P[@]}" -o "$S/x"
check "pickles message" grep -q "only PyTorch pickles (pytorch_model\*.bin), which vlmn does not read: convert them to safetensors" "$S/err"
"$V" info "$S/pk" >"$S/pkinfo" 2>&1; check "info pickles exit 1" test $? -eq 1
check "info pickles says what it found" grep -q "^weights: PyTorch pickles only" "$S/pkinfo"

# record: the same run from both forms (neurons and top lists)
"$V" make-dataset -n 6 --seed 2 --format jsonl -o "$S/ds" >/dev/null
R=(--data "$S/ds/data.jsonl" --images "$S/ds" --top-n 3 -t 1 -q)
"$V" record -m "$S/hf32" "${R[@]}" -o "$S/rh"; check "record from a folder" test $? -eq 0
"$V" record -m "$S/gf32-text.gguf" --mmproj "$S/gf32-mmproj.gguf" "${R[@]}" -o "$S/rg"
check "record hf neurons == gguf" bash -c "cmp <('$V' export '$S/rh' neurons --format csv) <('$V' export '$S/rg' neurons --format csv)"
check "record hf top == gguf" bash -c "cmp <('$V' export '$S/rh' top --format csv) <('$V' export '$S/rg' top --format csv)"
check "folder hash recorded" bash -c "'$V' export '$S/rh' run | grep -q '^model_sha256,[0-9a-f]\{64\}'"

# vlmn info
"$V" info "$H/llava-bf16" >"$S/info" 2>&1; check "info llava exit" test $? -eq 0
check "info architecture" grep -q "architecture LlavaForConditionalGeneration" "$S/info"
check "info shards" grep -q "^safetensors: 2 shards, 104 tensors" "$S/info"
check "info engine" grep -q "^engine: clip 4 blocks stored, 3 run (vision_feature_layer -2)" "$S/info"
check "info tokenizer" grep -q "^engine: tokenizer tokenizer.model, 440 pieces" "$S/info"
"$V" info "$H/clip" >"$S/clip" 2>&1; check "info clip exit" test $? -eq 0
check "info clip towers" grep -q "^vision_config: model_type clip_vision_model hidden_size 24" "$S/clip"
check "info clip projection" grep -q "visual_projection.weight  *F32   \[12, 24\]" "$S/clip"
check "info --json" bash -c "'$V' info --json '$H/clip' | grep -q '\"architecture\":\"CLIPModel\"'"

# one-line errors
check "folder + --mmproj" fails 1 "$V" probe -m "$S/hf32" --mmproj "$S/gf32-mmproj.gguf" --image "$D/img_wide.png" --question q --answer a -o "$S/x"
check "clip folder is not a llava" fails 1 "$V" probe -m "$H/clip" --image "$D/img_wide.png" --question q --answer a -o "$S/x"
check "clip message" grep -q "CLIPModel: a CLIP model, not a LLaVA" "$S/err"
mkdir -p "$S/bad" && cp "$H/llava-f32/config.json" "$S/bad/" && head -c 100 "$H/llava-f32/model.safetensors" >"$S/bad/model.safetensors"
check "truncated shard" fails 1 "$V" info "$S/bad"
check "truncated shard message" grep -q "model.safetensors: header length .* past end of file" "$S/err"
check "hf q8_0 refused" fails 1 "$V" make-model --type q8_0 --format hf -q -o "$S/q"
check "hf planted refused" fails 2 "$V" make-model --preset planted --format hf -q -o "$S/q"
finish
