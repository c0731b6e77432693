#!/usr/bin/env bash
# `vlmn preprocess`: output .npy byte-identical to numpy's np.save of the PIL/numpy
# reference (tests/reference/preprocess_ref.py), and clear errors for bad inputs.
set -u
. "$(dirname "$0")/../lib.sh"
D="$VLMN_TEST_DATA/image"
T=$(scratch)
MM="$D/mmproj_s30.gguf"

"$VLMN_BIN" preprocess --mmproj "$MM" --image "$D/j_base420.jpg" -o "$T/pad.npy"
check "pad exits 0" test $? -eq 0
check "pad equals reference" cmp -s "$T/pad.npy" "$D/j_base420.padf.30.npy"
"$VLMN_BIN" preprocess --mmproj "$MM" --image "$D/j_base420.jpg" --mode crop -o "$T/crop.npy"
check "crop equals reference" cmp -s "$T/crop.npy" "$D/j_base420.cropf.30.npy"
"$VLMN_BIN" preprocess --mmproj="$MM" --image="$D/h_interlaced_rgba16.png" --mode=pad --output "$T/rgba.npy"
check "png pad equals reference" cmp -s "$T/rgba.npy" "$D/h_interlaced_rgba16.padf.30.npy"
"$VLMN_BIN" preprocess --mmproj "$MM" --image "$D/h_pal4_short.png" --mode crop -o "$T/pal.npy"
check "palette crop equals reference" cmp -s "$T/pal.npy" "$D/h_pal4_short.cropf.30.npy"
check "nothing on stdout" test -z "$("$VLMN_BIN" preprocess --mmproj "$MM" --image "$D/j_grey.jpg" -o "$T/g.npy")"

# Errors: exit code, "vlmn preprocess: PATH: problem" on stderr, no output file.
fails() { # NAME WANT_RC NEEDLE ARGS...
  local name=$1 want=$2 needle=$3; shift 3
  rm -f "$T/err.npy"
  local err; err=$("$VLMN_BIN" preprocess "$@" 2>&1 >/dev/null); local rc=$?
  check "$name: exit $want" test "$rc" -eq "$want"
  check "$name: message" grep -q -- "$needle" <<<"$err"
  check "$name: no output" test ! -e "$T/err.npy"
}
fails "missing mean" 1 "mmproj_nomean.gguf: key clip.vision.image_mean" --mmproj "$D/mmproj_nomean.gguf" --image "$D/j_base420.jpg" -o "$T/err.npy"
fails "short std" 1 "clip.vision.image_std" --mmproj "$D/mmproj_badstd.gguf" --image "$D/j_base420.jpg" -o "$T/err.npy"
fails "missing mmproj" 1 "no-such.gguf" --mmproj "$T/no-such.gguf" --image "$D/j_base420.jpg" -o "$T/err.npy"
head -c 300 "$D/j_base420.jpg" > "$T/cut.jpg"
fails "truncated jpeg" 1 "cut.jpg: JPEG: truncated" --mmproj "$MM" --image "$T/cut.jpg" -o "$T/err.npy"
printf 'GIF89a....' > "$T/x.gif"
fails "gif" 1 "x.gif: unsupported image format" --mmproj "$MM" --image "$T/x.gif" -o "$T/err.npy"
fails "bad mode" 2 "unknown preprocessing mode 'squash'" --mmproj "$MM" --image "$D/j_base420.jpg" --mode squash -o "$T/err.npy"
fails "no output option" 2 "required" --mmproj "$MM" --image "$D/j_base420.jpg"
fails "unknown option" 2 "unknown option --frobnicate" --mmproj "$MM" --image "$D/j_base420.jpg" --frobnicate -o "$T/err.npy"
fails "output dir missing" 1 "$T/nodir/x.npy" --mmproj "$MM" --image "$D/j_base420.jpg" -o "$T/nodir/x.npy"
finish
