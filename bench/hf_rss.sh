#!/usr/bin/env bash
# Peak RSS of loading a LLaVA-1.5-7B-shaped model from a Hugging Face folder vs the same
# weights as a GGUF pair (make-model, same seed), on a reduced layer count (default 2
# decoder layers, 2 CLIP blocks; real widths, heads, vocabulary and image size), through
# one `vlmn probe` sample each (/usr/bin/time -v). Prints both peaks, their ratio and the
# weight bytes. Usage: bench/hf_rss.sh [VLMN] [WORKDIR] [N_LAYER]
set -euo pipefail
V=${1:-build/vlmn}
W=${2:-/tmp/vlmn-hf-rss}
L=${3:-2}
mkdir -p "$W"
"$V" make-model --preset llava-7b --n-layer "$L" --v-layer "$L" --seed 3 -q -o "$W/g" >/dev/null
"$V" make-model --preset llava-7b --n-layer "$L" --v-layer "$L" --seed 3 --format hf -q -o "$W/h" >/dev/null
"$V" make-dataset -n 1 --seed 1 --format jsonl -o "$W/ds" >/dev/null
img=$(ls "$W/ds/images/" | head -n 1)
peak() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'; }
pg=$(peak "$V" probe -m "$W/g-text.gguf" --mmproj "$W/g-mmproj.gguf" --image "$W/ds/images/$img" \
        --question "Describe the image." --answer "A room." -t 2 -o "$W/pg")
ph=$(peak "$V" probe -m "$W/h" --image "$W/ds/images/$img" --question "Describe the image." --answer "A room." \
        -t 2 -o "$W/ph")
cmp -s "$W/pg/activations.npy" "$W/ph/activations.npy" && same=identical || same=DIFFERENT
gb=$(( $(stat -c %s "$W/g-text.gguf") + $(stat -c %s "$W/g-mmproj.gguf") ))
hb=$(du -cb "$W"/h/*.safetensors | tail -n 1 | cut -f1)
echo "weights: gguf $gb bytes, hf $hb bytes"
echo "peak RSS probe: gguf ${pg} KiB, hf ${ph} KiB, hf/gguf $(awk -v a="$ph" -v b="$pg" 'BEGIN {printf "%.3f", a / b}')"
echo "activations hf vs gguf: $same"
