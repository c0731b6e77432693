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
