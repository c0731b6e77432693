#!/usr/bin/env bash
# `vlmn label` end to end through the CLI, as a user runs it (issue 15): the tiny
# reference CLIP (tests/data/clip/tiny) with a CLIP-form tokenizer.json written here whose
# 40 ids fit its text tower; planted run -> record -> classify -> trace -> `label
# --as-explanations` -> `simulate --visual clip` -> `score` -> `stats --table2` (its
# label:tiny group) -> `report` (the labels table, a hostile concept and CLIP folder name
# escaped) -> `browse --export` (the neuron page lists the labels). The tiny CLIP is
# random, so which concept wins is not checked (tests/clip/test_label*.c check the
# numbers). Also bad input through the CLI: a missing --clip folder, a folder without
# tokenizer.json, a tokenizer whose ids or end token do not fit the model, an empty
# concepts file, one with only blank lines: each a one-line error naming the file,
# exit 1, nothing written to the run.
set -u
. "$(dirname "$0")/../lib.sh"
V=$VLMN_BIN
d=$(scratch)
q() { sqlite3 "$d/run/run.sqlite" "$1"; }
state() { sqlite3 "$d/run/run.sqlite" .dump | md5sum; }

# CLIP's tokenizer.json form (NFC, whitespace runs -> " ", lowercase; CLIP's split regex;
# byte-level BPE with `</w>` word ends, unk = <|endoftext|>) with 40 ids: a..z 0..25, the
# word ends a d e g k l n r s t w y</w> 26..37, <|startoftext|> 38, <|endoftext|> 39
# (the tiny CLIP's bos / eos_token_id), no merges.
tiny_clip_tokenizer() {
  local v="" i=0 c sp='"single_word": false, "lstrip": false, "rstrip": false, "special": true'
  for c in a b c d e f g h i j k l m n o p q r s t u v w x y z; do v+="\"$c\": $i, "; i=$((i + 1)); done
  for c in a d e g k l n r s t w y; do v+="\"$c</w>\": $i, "; i=$((i + 1)); done
  cat > "$1" <<JSON
{"version": "1.0", "truncation": null, "padding": null,
 "added_tokens": [{"id": 38, "content": "<|startoftext|>", $sp, "normalized": true},
                  {"id": 39, "content": "<|endoftext|>", $sp, "normalized": false}],
 "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"},
   {"type": "Replace", "pattern": {"Regex": "\\\\s+"}, "content": " "}, {"type": "Lowercase"}]},
 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex":
   "<\\\\|startoftext\\\\|>|<\\\\|endoftext\\\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\\\p{L}]+|[\\\\p{N}]|[^\\\\s\\\\p{L}\\\\p{N}]+"},
   "behavior": "Removed", "invert": true},
   {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
 "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 39], "cls": ["<|startoftext|>", 38],
   "trim_offsets": false, "add_prefix_space": false},
 "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
 "model": {"type": "BPE", "dropout": null, "unk_token": "<|endoftext|>", "continuing_subword_prefix": "",
   "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
   "vocab": {$v"<|startoftext|>": 38, "<|endoftext|>": 39}, "merges": []}}
JSON
}
clip_folder() { # DIR [TOKENIZER]: the tiny CLIP's weights, with TOKENIZER as tokenizer.json
  mkdir -p "$1" && cp "$VLMN_TEST_DATA"/clip/tiny/{config.json,model.safetensors,preprocessor_config.json} "$1/" &&
    { [ -z "${2:-}" ] || cp "$2" "$1/tokenizer.json"; }
}
tiny_clip_tokenizer "$d/tok.json"
clip_folder "$d/tiny" "$d/tok.json"
# the ids by hand from the layout above: lowercase, blanks collapsed, `</w>` on word ends
check "tokenizer: ids" test "$("$V" tokenize -m "$d/tiny/tokenizer.json" " Red   dog")" = "38 17 4 27 3 14 29 39"
check "tokenizer: unknown -> <|endoftext|>" test "$("$V" tokenize -m "$d/tiny/tokenizer.json" "b7")" = "38 39 39 39"

planted_run "$d" 50
# two planted visual neurons and a multi-modal one (from the planted list)
vis=$(planted_neurons "$d" visual | head -2 | awk '{printf "%s:%s;", $1, $2}')
mm=$(planted_neurons "$d" multimodal | head -1 | awk '{printf "%s:%s", $1, $2}')
spec="$vis$mm"
check "planted neurons ($spec)" test "$(tr ';' '\n' <<<"$spec" | grep -c :)" -eq 3
check "classified visual / multimodal" test "$(q "SELECT COUNT(*) FROM classification WHERE
  (label='visual' AND layer || ':' || neuron IN ('${vis//;/\',\'}')) OR (label='multimodal' AND layer || ':' || neuron = '$mm')")" -eq 3
"$V" trace "$d/run" --neurons "$spec" --samples top:1,3,5,7,9,11,13,15,17,19 -t 1 -q >/dev/null 2>&1; check "trace" test $? -eq 0
printf 'red\ngreen\n  blue  \nyellow\n# shapes\ncyan\nmagenta\n\ncircle\nsquare\n' > "$d/concepts.txt"

# label with the explanations; a trailing '/' does not change the CLIP's name
"$V" label "$d/run" --clip "$d/tiny/" --concepts "$d/concepts.txt" --top 3 --as-explanations > "$d/label.txt" 2>"$d/label.err"
check "label: exit 0" test $? -eq 0
check "label: summary" grep -q "^label: 3 neurons labelled with tiny ([0-9]* samples), 0 not visual/multi-modal" "$d/label.err"
check "label: explanations written" grep -q "^label: explanations label:tiny: 3 written, 0 unchanged" "$d/label.err"
check "label: 3 lines per neuron" test "$(grep -cP '^\d+:\d+\t(red|green|blue|yellow|cyan|magenta|circle|square)\t-?\d\.\d{4}$' \
  "$d/label.txt")" -eq 9
check "label: rows" test "$(q "SELECT COUNT(*) FROM labels WHERE clip='tiny' AND samples='top:1,5,9,13,17' AND
  n_samples=5 AND rank BETWEEN 1 AND 3")" -eq 9
check "label: stdout is the rows, best first" test "$(q "SELECT group_concat(layer || ':' || neuron || char(9) || concept,
  char(10)) FROM (SELECT * FROM labels ORDER BY layer, neuron, rank)")" = "$(sort -t: -k1,1n -k2,2n -s "$d/label.txt" | cut -f1,2)"
check "label: rank 1 is the explanation" test "$(q "SELECT COUNT(*) FROM explanations e JOIN labels l USING (layer, neuron)
  WHERE e.explainer='label:tiny' AND e.images='clip' AND e.sampling='top' AND e.status='ok' AND l.rank=1 AND
  e.text=l.concept AND e.kind=(SELECT label FROM classification c WHERE c.layer=e.layer AND c.neuron=e.neuron)")" -eq 3

"$V" simulate "$d/run" --visual clip --clip "$d/tiny" >/dev/null 2>"$d/sim.err"; check "simulate: exit 0" test $? -eq 0
check "simulate: 5 samples per neuron" grep -q "15 samples simulated now, 0 failed" "$d/sim.err"
check "simulate: rows" test "$(q "SELECT COUNT(*) FROM simulations WHERE explainer='label:tiny' AND simulator='clip-tiny'
  AND mode='clip' AND modality='visual' AND status='ok' AND rank IN (3,7,11,15,19)")" -eq 15
"$V" score "$d/run" >/dev/null; check "score: exit 0" test $? -eq 0
check "score: every neuron's visual score" test "$(q "SELECT COUNT(*) FROM scores WHERE explainer='label:tiny' AND
  simulator='clip-tiny:clip' AND score_visual BETWEEN -1 AND 1 AND n_visual > 0")" -eq 3
"$V" stats "$d/run" --table2 > "$d/t2.txt"; check "table2: exit 0" test $? -eq 0
check "table2: the label group" grep -q "^Table 2: explainer label:tiny, simulator clip-tiny:clip" "$d/t2.txt"
check "table2: its visual neurons" grep -q "^Visual neurons .* n=2/0" "$d/t2.txt"
"$V" stats "$d/run" --table2 --json | grep -q '"explainer":"label:tiny","simulator":"clip-tiny:clip"'
check "table2: json" test $? -eq 0

# a rerun writes nothing and simulates nothing again
x0=$(sqlite3 "$d/run/run.sqlite" ".dump explanations simulations scores" | md5sum)
"$V" label "$d/run" --clip "$d/tiny" --concepts "$d/concepts.txt" --top 3 --as-explanations >/dev/null 2>"$d/label2.err"
check "label rerun: unchanged" grep -q "label:tiny: 0 written, 3 unchanged" "$d/label2.err"
"$V" simulate "$d/run" --visual clip --clip "$d/tiny" >/dev/null 2>"$d/sim2.err"
check "simulate rerun: nothing new" grep -q "0 samples simulated now, 0 failed, 15 already simulated" "$d/sim2.err"
check "reruns: explanations, simulations, scores unchanged" test "$(sqlite3 "$d/run/run.sqlite" \
  ".dump explanations simulations scores" | md5sum)" = "$x0"

# the shipped concept list (no --concepts), another CLIP folder name: rows of its own
clip_folder "$d/dflt" "$d/tok.json"
"$V" label "$d/run" --clip "$d/dflt" --neurons "$mm" --top 2 -q > "$d/dflt.txt"; check "default list: exit 0" test $? -eq 0
check "default list: 2 labels" test "$(q "SELECT COUNT(*) FROM labels WHERE clip='dflt'")" -eq 2 -a "$(wc -l < "$d/dflt.txt")" -eq 2
check "default list: its concepts" test -z "$(cut -f2 "$d/dflt.txt" | grep -vxFf "$VLMN_SRC/data/concepts.txt")"
check "default list: tiny's labels kept" test "$(q "SELECT COUNT(*) FROM labels WHERE clip='tiny'")" -eq 9

# bad input: one line naming the file, exit 1, the run unchanged
s0=$(state)
n0=$(q "SELECT COUNT(*) FROM labels")
clip_folder "$d/notok"
clip_folder "$d/bigtok" "$VLMN_TEST_DATA/hftok/clip.tokenizer.json"
sed 's/38/X/g; s/39/38/g; s/X/39/g' "$d/tok.json" > "$d/swapped.json" # <|endoftext|> = 38
clip_folder "$d/badend" "$d/swapped.json"
: > "$d/empty.txt"
printf '\n  \n\t\r\n\n' > "$d/blank.txt"
refused() { # NAME WANT CMD...: CMD fails with one line on stderr holding WANT, nothing written
  local name=$1 want=$2; shift 2
  "$@" >"$d/bad.out" 2>"$d/bad.err"
  local rc=$?
  check "$name: exit 1" test "$rc" -eq 1
  check "$name: one line" test "$(wc -l < "$d/bad.err")" -eq 1
  check "$name: names it" grep -qF "$want" "$d/bad.err"
  check "$name: no output" test ! -s "$d/bad.out"
  check "$name: nothing written" test "$(state)" = "$s0"
}
L=("$V" label "$d/run" --as-explanations)
refused "label, no folder" "$d/nosuch: no such folder" "${L[@]}" --clip "$d/nosuch" --concepts "$d/concepts.txt"
refused "label, no tokenizer.json" "$d/notok/tokenizer.json: cannot open" "${L[@]}" --clip "$d/notok"
refused "label, tokenizer too big" "$d/bigtok/tokenizer.json: 784 token ids, the text tower has 40" \
  "${L[@]}" --clip "$d/bigtok" --concepts "$d/concepts.txt"
refused "label, wrong end token" "$d/badend/tokenizer.json: end token id 38, config.json text_config.eos_token_id is 39" \
  "${L[@]}" --clip "$d/badend" --concepts "$d/concepts.txt"
refused "label, empty concepts" "$d/empty.txt: no concepts" "${L[@]}" --clip "$d/tiny" --concepts "$d/empty.txt"
refused "label, blank concepts" "$d/blank.txt: no concepts" "${L[@]}" --clip "$d/tiny" --concepts "$d/blank.txt"
S=("$V" simulate "$d/run" --visual clip --simulator other)
refused "simulate, no folder" "$d/nosuch: no such folder" "${S[@]}" --clip "$d/nosuch"
refused "simulate, no tokenizer.json" "$d/notok/tokenizer.json: cannot open" "${S[@]}" --clip "$d/notok"
refused "simulate, tokenizer too big" "$d/bigtok/tokenizer.json: 784 token ids" "${S[@]}" --clip "$d/bigtok"
check "labels kept" test "$(q "SELECT COUNT(*) FROM labels")" -eq "$n0"

# a hostile CLIP folder name and concept (both from the user) in the report and the browser
evil="$d/ev<i>\"&'"
hostile='<script>alert(1)</script> & "q"'
hostile_html='&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;'
clip_folder "$evil" "$d/tok.json"
printf '%s\n' "$hostile" > "$d/hostile.txt"
"$V" label "$d/run" --clip "$evil" --concepts "$d/hostile.txt" -q >/dev/null; check "label hostile: exit 0" test $? -eq 0
check "label hostile: rows" test "$(q "SELECT COUNT(*) FROM labels WHERE clip='ev<i>\"&''' AND rank=1")" -eq 3
"$V" report "$d/run" -o "$d/rep" >/dev/null; check "report: exit 0" test $? -eq 0
h=$d/rep/index.html
check "report: visual labels" grep -q '<h3 id="labels-visual">Labels of visual neurons</h3>' "$h"
check "report: multi-modal labels" grep -q '<h3 id="labels-multimodal">Labels of multi-modal neurons</h3>' "$h"
check "report: the 3 tiny label rows" test "$(grep -o '<td>tiny</td><td>5 (top:1,5,9,13,17)</td>' "$h" | wc -l)" -eq 3
for n in $(q "SELECT layer || '/' || neuron || '/' || concept FROM labels WHERE clip='tiny' AND rank=1"); do
  IFS=/ read -r ly nr c <<<"$n"
  check "report: $ly:$nr's label with its held-out score" grep -qP "<tr><td class=\"n\">$ly</td><td class=\"n\">$nr</td><td \
class=\"expl\">$c</td><td class=\"n\">-?\d\.\d{3}</td><td class=\"n\">(-?\d\.\d{3}|undefined|&#8211;)</td><td>tiny</td>" \
    "$h"
done
check "report: hostile concept escaped" test "$(grep -cF "<td class=\"expl\">$hostile_html</td>" "$h")" -ge 1
check "report: hostile CLIP name escaped" grep -qF '<td>ev&lt;i&gt;&quot;&amp;&#39;</td>' "$h"
check "report: no live markup" sh -c "! grep -q '<script\|ev<i>' '$h'"
"$V" browse "$d/run" --export "$d/site" -q >/dev/null; check "browse export: exit 0" test $? -eq 0
L0=${vis%%:*}; N0=${vis#*:}; N0=${N0%%;*}
p=$d/site/neuron/$L0/$N0.html
check "browse: labels table" grep -q '<table id="labels">' "$p"
for c in $(q "SELECT concept FROM labels WHERE clip='tiny' AND layer=$L0 AND neuron=$N0 ORDER BY rank"); do
  check "browse: label $c" grep -q "<td>tiny</td><td class=\"n\">[123]</td><td class=\"x\">$c</td>" "$p"
done
check "browse: hostile escaped" grep -qF "<td class=\"x\">$hostile_html</td>" "$p"
check "browse: no live markup" sh -c "! grep -q '<script\|ev<i>' '$p'"
check "browse: label explanation listed" grep -q 'label:tiny' "$p"
j=$d/site/api/neuron/$L0/$N0.json
check "browse: JSON labels" grep -q "{\"clip\":\"tiny\",\"rank\":1,\"concept\":\"$(q "SELECT concept FROM labels WHERE
  clip='tiny' AND layer=$L0 AND neuron=$N0 AND rank=1")\"" "$j"
check "browse: JSON escaped" grep -qF '"clip":"ev\u003ci\u003e\"\u0026'"'"'","rank":1,"concept":"\u003cscript\u003ealert(1)' "$j"
finish
