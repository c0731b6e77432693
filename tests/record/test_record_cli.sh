#!/usr/bin/env bash
# vlmn record / merge / export end to end with the synthetic backend: 3 shards +
# merge, mpirun -n 2, kill -9 at random points + --resume, and SIGINT + --resume all
# give exactly the single uninterrupted run (arrays byte-identical, same tables).
set -u
. "$(dirname "$0")/../lib.sh"
D=$(scratch)
V=$VLMN_BIN
SYN=4x96:7:12

# 45 samples; images 7, 20 (empty file) and 33 missing/corrupt; sample 40 has no image field
mkdir -p "$D/img"
{
  echo '['
  for i in $(seq 0 44); do
    [ "$i" -gt 0 ] && echo ','
    if [ "$i" -eq 40 ]; then
      printf '{"id":"s%03d","conversations":[{"from":"human","value":"<image>\\nQ"},{"from":"gpt","value":"A"}]}' "$i"
    else
      printf '{"id":"s%03d","image":"im%d.jpg","conversations":[{"from":"human","value":"<image>\\nWhat is shown in %d?"},{"from":"gpt","value":"Answer, \\"%d\\" with words."}]}' "$i" "$i" "$i" "$i"
    fi
  done
  echo ']'
} >"$D/data.json"
for i in $(seq 0 44); do [ $((i % 13)) -eq 7 ] || echo x >"$D/img/im$i.jpg"; done
: >"$D/img/im20.jpg"

rec() { "$V" record --synthetic "$SYN" --data "$D/data.json" --images "$D/img" --top-n 5 --checkpoint-every 3 -q "$@"; }
# in the background, so that $! is vlmn itself (a backgrounded function would be a subshell)
recbg() { "$V" record --synthetic "$SYN" --data "$D/data.json" --images "$D/img" --top-n 5 -q "$@" & pid=$!; }

. "$(dirname "$0")/record_lib.sh"

rec -o "$D/single" --checkpoint-every 1000; check "single run" test $? -eq 0
check "no checkpoint left" test ! -e "$D/single/ckpt"
"$V" export "$D/single" samples >"$D/samples.csv"
check "45 sample rows" test "$(tail -n +2 "$D/samples.csv" | wc -l)" -eq 45
check "4 failed samples" test "$(grep -c ',failed,' "$D/samples.csv")" -eq 4
check "failure reason recorded" grep -q 'im7.jpg: No such file' "$D/samples.csv"
check "empty image is corrupt" grep -q 'im20.jpg: corrupt image' "$D/samples.csv"
check "missing image field" grep -q 'no \\"image\\" string\|no ""image"" string' "$D/samples.csv"
"$V" export "$D/single" top >"$D/top.csv"
check "top header" test "$(head -1 "$D/top.csv")" = "layer,neuron,rank,sample_id,max_act,sample_index"
check "top rows = 4 x 96 x 5" test "$(tail -n +2 "$D/top.csv" | wc -l)" -eq 1920
# ranks descending in max_act, ties by lower sample index
check "top order" awk -F, 'NR>1 { if ($3 > 1 && ($5 > pm || ($5 == pm && $6 <= ps))) bad=1; pm=$5; ps=$6 } END { exit bad }' "$D/top.csv"
check "top json" bash -c "'$V' export '$D/single' top --format json | head -2 | grep -q '\"rank\":1'"

# checkpoints do not change the result
rec -o "$D/ckpt3"; check "run with checkpoints" same_run "$D/single" "$D/ckpt3"

# 3 shards + merge
for i in 0 1 2; do rec -o "$D/shard$i" --shard $i/3; done
"$V" merge -q "$D/shard2" "$D/shard0" "$D/shard1" -o "$D/merged"; check "merge exit" test $? -eq 0
check "3 shards + merge == single" same_run "$D/single" "$D/merged"
"$V" merge -q "$D/shard0" "$D/shard1" -o "$D/merged2" 2>/dev/null; check "merge refuses a missing shard" test $? -ne 0
# the kernels' ISA level is provenance: every level that recorded samples is listed
isa() { "$V" export "$1" run | grep '^isa,' | cut -d, -f2- | tr -d '"'; }
here=$(isa "$D/single")
check "isa recorded" test -n "$here"
VLMN_ISA=ref rec -o "$D/refshard" --shard 1/3; check "shard with VLMN_ISA=ref" test $? -eq 0
check "isa of a ref shard" test "$(isa "$D/refshard")" = ref
"$V" merge -q "$D/shard0" "$D/refshard" "$D/shard2" -o "$D/mixed"; check "merge across ISA levels" test $? -eq 0
if [ "$here" != ref ]; then check "merged isa lists both" test "$(isa "$D/mixed")" = "$here,ref"; fi

# MPI: 2 ranks shard and merge by themselves
mpi_run 2 record --synthetic "$SYN" --data "$D/data.json" --images "$D/img" --top-n 5 --checkpoint-every 3 -q -o "$D/mpi"
rc=$?
if [ $rc -ne 77 ]; then
  check "mpirun exit" test $rc -eq 0
  check "mpirun -n 2 == single" same_run "$D/single" "$D/mpi"
fi

# kill -9 at random moments, then --resume until done (5 ms per sample: ~0.25 s run)
SYN=4x96:7:12:5
rec -o "$D/slow" --checkpoint-every 1000; check "slow single == single" same_run "$D/single" "$D/slow"
RANDOM=$$
kill_resume 4 --synthetic "$SYN" --data "$D/data.json" --images "$D/img" --top-n 5 -q -o "$D/killed" --checkpoint-every 4
check "resume after kill -9 exit" test $? -eq 0
check "kill -9 + resume == single" same_run "$D/single" "$D/killed"
check "the killed run was resumed" bash -c "'$V' export '$D/killed' run | grep -q '^resume_times,'"

# SIGINT stops at a sample boundary with a checkpoint
recbg -o "$D/int" --checkpoint-every 1000
sleep 0.15; kill -INT $pid; wait $pid; rc=$?
check "SIGINT exit 130" test $rc -eq 130
check "SIGINT wrote a checkpoint" test -f "$D/int/ckpt/progress.txt"
rec -o "$D/int" --resume; check "resume after SIGINT" same_run "$D/single" "$D/int"
rec -o "$D/int" --resume; check "resume of a complete run is a no-op" test $? -eq 0
check "still identical" same_run "$D/single" "$D/int"
SYN=4x96:7:12

# errors
SYN=4x96:7:12:5 recbg -o "$D/busy" --checkpoint-every 1000
sleep 0.05
rec -o "$D/busy" --resume 2>"$D/err"; rc=$?
wait $pid
check "a second writer is refused" test $rc -eq 1
check "says in use" grep -q "in use" "$D/err"
rec -o "$D/single" 2>/dev/null; check "existing run needs --resume" test $? -eq 1
rec -o "$D/single" --resume --top-n 6 2>"$D/err"; check "resume with other options fails" test $? -eq 1
check "names the option" grep -q "top_n" "$D/err"
rec -o "$D/single" --resume --precision fastest 2>"$D/err"; check "resume with another precision fails" test $? -eq 1
check "names the precision" grep -q "'precision' was 'fast'" "$D/err"
rec -o "$D/prec" --precision bogus 2>"$D/err"; check "unknown precision is a usage error" test $? -eq 2
rec -o "$D/strict" --strict 2>/dev/null; check "--strict stops at a failed sample" test $? -eq 1
rec -o "$D/lim" --limit 10 --shard 1/2; check "limit + shard" test "$("$V" export "$D/lim" samples | tail -n +2 | cut -d, -f6 | tr '\n' ' ')" = "1 3 5 7 9 "
"$V" record --synthetic 2x8 --data /nonexistent.json -o "$D/nodata" -q 2>/dev/null; check "missing dataset fails" test $? -eq 1
check "missing dataset leaves no run" test ! -e "$D/nodata"
printf 'not json\n' > "$D/bad.json"
err=$("$V" record --synthetic 2x8 --data "$D/bad.json" -o "$D/baddata" -q 2>&1); rc=$?
check "malformed dataset fails" test $rc -eq 1
check "malformed dataset: one line naming the file" bash -c '[ "$(wc -l <<<"$1")" -eq 1 ] && grep -q "bad.json" <<<"$1"' _ "$err"
check "malformed dataset leaves no run" test ! -e "$D/baddata"
printf '[{"id":1,"image":"a.png","conversations":[]},\n{"id":2,' > "$D/cut.json"
"$V" record --synthetic 2x8 --data "$D/cut.json" -o "$D/cutdata" -q 2>/dev/null; rc=$?
check "truncated dataset fails before the run starts" bash -c "[ $rc -eq 1 ] && [ ! -e '$D/cutdata' ]"
"$V" record --synthetic 2x8 --data "$D/data.json" --images "$D/img" -o "$D/nodata" -q; check "a failed setup leaves no run behind" test $? -eq 0
"$V" record --data "$D/data.json" -o "$D/x" 2>/dev/null; check "usage error exit 2" test $? -eq 2
"$V" export "$D/single" bogus 2>/dev/null; check "export bad table exit 2" test $? -eq 2
"$V" export "$D/int/ckpt" top 2>/dev/null; check "export of a non-run fails" test $? -eq 1
finish
