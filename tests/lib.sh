# Shared helpers for tests/**/test_*.sh: `check NAME CMD...` runs CMD and counts the
# result; `finish` prints "N passed, N failed" and exits non-zero on any failure.
: "${VLMN_BIN:?VLMN_BIN not set (run through ctest)}"
: "${VLMN_TMP:=/tmp}"
T_PASS=0
T_FAIL=0
check() {
  local name=$1; shift
  if "$@"; then T_PASS=$((T_PASS + 1)); else T_FAIL=$((T_FAIL + 1)); echo "FAIL: $name" >&2; fi
}
# A fresh scratch folder for this script.
scratch() { local d="$VLMN_TMP/$(basename "$0" .sh).$$"; rm -rf "$d"; mkdir -p "$d"; echo "$d"; }
finish() { echo "$T_PASS passed, $T_FAIL failed"; [ "$T_FAIL" -eq 0 ]; }
# planted_run DIR N: the planted model (DIR/m-text.gguf, DIR/m-mmproj.gguf,
# DIR/m-planted.json), N planted samples (DIR/data), recorded with --top-n 20 into
# DIR/run (one thread: the tiny model gains nothing from more) and classified; each step
# counted by check.
planted_run() {
  "$VLMN_BIN" make-model --preset planted -o "$1/m" >/dev/null; check "make-model" test $? -eq 0
  "$VLMN_BIN" make-dataset --preset planted -n "$2" -o "$1/data" >/dev/null; check "make-dataset" test $? -eq 0
  "$VLMN_BIN" record -m "$1/m-text.gguf" --mmproj "$1/m-mmproj.gguf" --data "$1/data/data.json" --images "$1/data" \
    --top-n 20 -t 1 -q -o "$1/run" >/dev/null 2>&1; check "record" test $? -eq 0
  "$VLMN_BIN" classify "$1/run" >/dev/null; check "classify" test $? -eq 0
}
# planted_neurons DIR TYPE: "LAYER NEURON FEATURE" per line for the planted neurons of
# TYPE (visual, text, multimodal) from DIR/m-planted.json (the planted list, not vlmn's).
planted_neurons() {
  tr -d ' \t\n' < "$1/m-planted.json" |
    grep -o "\"layer\":[0-9]*,\"neuron\":[0-9]*,\"type\":\"$2\",\"feature\":\"[a-z]*\"" |
    sed 's/"layer":\([0-9]*\),"neuron":\([0-9]*\),"type":"[a-z]*","feature":"\([a-z]*\)"/\1 \2 \3/'
}
