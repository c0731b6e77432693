# Helpers shared by tests/record/test_*.sh (sourced after tests/lib.sh; needs $V = vlmn).
# Two runs are the same run: identical arrays, tables, and run keys other than
# timestamps and merge bookkeeping.
same_run() {
  local a=$1 b=$2 f t
  for f in stats.bin sums.bin top.bin; do cmp -s "$a/$f" "$b/$f" || { echo "  $f differs: $a $b" >&2; return 1; }; done
  for t in samples neurons top; do
    cmp -s <("$V" export "$a" $t) <("$V" export "$b" $t) || { echo "  table $t differs: $a $b" >&2; return 1; }
  done
  cmp -s <("$V" export "$a" run | grep -Ev '^(start_time|end_time|resume_times|merge_sources),') \
         <("$V" export "$b" run | grep -Ev '^(start_time|end_time|resume_times|merge_sources),') ||
    { echo "  run keys differ: $a $b" >&2; return 1; }
}

# kill -9 `vlmn record ARGS` at random moments NKILL times, each time continuing with
# --resume, then let it finish with --resume. Prints the hits. Each kill comes 10..90 ms
# after the run exists (RUN/run.sqlite, RUN taken from "-o RUN" in ARGS), so the first
# kill never lands before the run was created, even in slow (sanitizer) builds.
kill_resume() {
  local nkill=$1; shift
  local hits=0 k pid run="" prev="" a i
  for a in "$@"; do [ "$prev" = "-o" ] && run=$a; prev=$a; done
  for k in $(seq 1 "$nkill"); do
    if [ "$k" -eq 1 ]; then "$V" record "$@" & pid=$!; else "$V" record "$@" --resume & pid=$!; fi
    # wait for a first checkpoint, so that under load a kill cannot land before anything is
    # durable (then there would be nothing to resume from and the test would not test it)
    for i in $(seq 1 1000); do [ -e "$run/ckpt/progress.txt" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
    sleep 0.0$((RANDOM % 9 + 1))
    kill -9 "$pid" 2>/dev/null && hits=$((hits + 1))
    wait "$pid" 2>/dev/null
  done
  echo "kill -9 hits: $hits of $nkill"
  "$V" record "$@" --resume
}

# mpirun -n N vlmn ARGS; returns 77 when MPI is not available.
mpi_run() {
  local n=$1; shift
  command -v mpirun >/dev/null || { echo "SKIP: MPI test: mpirun not found"; return 77; }
  local out rc
  out=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 \
        mpirun --oversubscribe -n "$n" "$V" "$@" 2>&1); rc=$?
  if grep -q "built without MPI" <<<"$out"; then echo "SKIP: MPI test: vlmn built without MPI"; return 77; fi
  [ $rc -eq 0 ] || echo "$out" >&2
  return $rc
}
