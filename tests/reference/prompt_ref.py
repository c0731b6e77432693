#!/usr/bin/python3
"""Golden values for vlmn's prompt templates (tests/tok/test_prompt.c).

Re-implements, in Python and from LLaVA's sources' semantics (not from vlmn):
  - llava/conversation.py get_prompt() for SeparatorStyle.TWO (conv_llava_v1 and
    conv_vicuna_v1) and train.py preprocess_plain() for conv_llava_plain;
  - llava/mm_utils.py tokenizer_image_token();
  - HF's slow LlamaTokenizer (legacy) __call__: special tokens (<s>, </s>, <unk>, all
    AddedTokens with lstrip/rstrip off) are cut out of the text (earliest, longest
    match), every other piece of text goes through sentencepiece's encode (own dummy
    prefix), BOS first;
with Debian's sentencepiece on the model that tests/reference/tok_ref.py trained (read
back from tests/data/tok/bpe.vocab.tsv? no: sentencepiece needs its .model, so this
script retrains it exactly as tok_ref.py does, deterministically).

Labels: 0 image, 1 text (a token made from at least one character of the answer, using
sentencepiece's own piece offsets; the byte pieces of one character share its span),
2 prompt. IMAGE_TOKEN_INDEX (-200) is expanded to n_image_tokens positions of id -1.

  /usr/bin/python3 tests/reference/prompt_ref.py tests/data/tok

Output tests/data/tok/prompt.tsv, fields separated by TAB, text escaped as tok_ref.esc,
"\\N" for None:
  T <template> <question> <answer> <n_img> <ids> <labels>
  R <prompt> <text_begin byte> <text_end byte> <n_img> <ids> <labels>
"""
import os
import random
import sys
import tempfile

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tok_ref  # noqa: E402

IMAGE_TOKEN_INDEX = -200
SYSTEMS = {
    "llava-v1": "A chat between a curious human and an artificial intelligence assistant. "
                "The assistant gives helpful, detailed, and polite answers to the human's questions.",
    "vicuna-v1": "A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.",
}


def get_prompt_two(system, roles, messages, sep=" ", sep2="</s>"):
    """conversation.py SeparatorStyle.TWO."""
    seps = [sep, sep2]
    ret = system + seps[0]
    for i, (role, message) in enumerate(messages):
        if message:
            ret += role + ": " + message + seps[i % 2]
        else:
            ret += role + ":"
    return ret


def make_prompt(template, question, answer):
    """Prompt text and the answer's character range."""
    if template in SYSTEMS:
        qs = "<image>\n" + (question or "")  # model_vqa.py: DEFAULT_IMAGE_TOKEN + '\n' + qs
        msgs = [("USER", qs), ("ASSISTANT", answer)]
        p = get_prompt_two(SYSTEMS[template], ("USER", "ASSISTANT"), msgs)
        if answer:  # the answer sits right before the final "</s>"
            end = len(p) - len("</s>")
            return p, (end - len(answer), end)
        if answer == "":  # message "" is falsy: get_prompt writes "ASSISTANT:"
            return p, (0, 0)
        return p, (0, 0)
    assert template == "plain" and not question
    if answer is None:
        return "<image>", (0, 0)
    return "<image>" + answer + "\n", (len("<image>"), len("<image>") + len(answer))


class SlowLlamaTokenizer:
    """HF slow LlamaTokenizer (legacy) over a sentencepiece model: ids and char spans."""

    def __init__(self, sp):
        self.sp = sp
        self.special = {"<s>": sp.bos_id(), "</s>": sp.eos_id(), "<unk>": sp.unk_id()}

    def _sp_encode(self, text, base):
        proto = self.sp.encode_as_immutable_proto(text)  # keep alive while reading pieces
        ids = [p.id for p in proto.pieces]
        spans = [(p.begin, p.end) for p in proto.pieces]
        assert ids == self.sp.encode(text)
        for i in range(len(ids) - 2, -1, -1):  # byte pieces share their char's span
            if self.sp.is_byte(ids[i]) and spans[i][0] == spans[i][1] and self.sp.is_byte(ids[i + 1]):
                spans[i] = spans[i + 1]
        return [(t, base + b, base + e) for t, (b, e) in zip(ids, spans)]

    def __call__(self, text, base=0):
        """tokenizer(text).input_ids with char spans (in the full prompt)."""
        toks = [(self.sp.bos_id(), base, base)]
        pos = 0
        while pos <= len(text):
            best, blen = None, 0
            for s in self.special:
                k = text.find(s, pos)
                if k >= 0 and (best is None or k < best or (k == best and len(s) > blen)):
                    best, blen = k, len(s)
            end = len(text) if best is None else best
            if end > pos:
                toks += self._sp_encode(text[pos:end], base + pos)
            if best is None:
                break
            toks.append((self.special[text[best:best + blen]], base + best, base + best + blen))
            pos = best + blen
        return toks


def tokenizer_image_token(prompt, tok, n_image):
    """mm_utils.tokenizer_image_token, IMAGE_TOKEN_INDEX expanded to n_image x -1."""
    chunks, base = [], 0
    for c in prompt.split("<image>"):
        chunks.append(tok(c, base))
        base += len(c) + len("<image>")
    input_ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0][0] == tok.sp.bos_id():
        offset = 1
        input_ids.append(chunks[0][0])
    sep = [(IMAGE_TOKEN_INDEX, -1, -1)] * (offset + 1)
    inter = [e for sub in zip(chunks, [sep] * len(chunks)) for e in sub][:-1]
    for x in inter:
        input_ids.extend(x[offset:])
    out = []
    for t in input_ids:
        if t[0] == IMAGE_TOKEN_INDEX:
            out += [(-1, -1, -1)] * n_image
        else:
            out.append(t)
    return out


def labels(toks, ans, bos_first=True):
    lab = []
    for i, (tid, b, e) in enumerate(toks):
        if tid == -1:
            lab.append(0)
        elif ans[0] < ans[1] and b < ans[1] and e > ans[0] and not (i == 0 and bos_first):
            lab.append(1)
        else:
            lab.append(2)
    return lab


def fmt(x):
    return "\\N" if x is None else tok_ref.esc(x)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/data/tok"
    with tempfile.TemporaryDirectory() as work:
        r = random.Random(20240501)  # exactly tok_ref.py's main model
        sp = tok_ref.train(work, "bpe", tok_ref.training_text(r, 30000), 4000, True,
                           tok_ref.USER_DEFINED, tok_ref.CONTROL)
        # The vocabulary must be the committed one (same training = same model).
        toks, scores, types = tok_ref.vocab_of(sp, tok_ref.USER_DEFINED)
        with open(os.path.join(outdir, "bpe.vocab.tsv"), encoding="utf-8") as f:
            committed = [ln.rstrip("\n").split("\t")[3] for ln in f if not ln.startswith("#")]
        assert committed == [tok_ref.esc(p) for p in toks], "retrained model differs from fixture"
        tok = SlowLlamaTokenizer(sp)

        long_answer = " ".join(tok_ref.gen_sentence(random.Random(5), 12) for _ in range(8))
        qa = [
            ("What is in the image?", "A cat sitting on a table."),
            ("Describe the image in detail.",
             "The image shows a red bus.\nIt is parked on a street.\n\nThere are two people."),
            ("", "x"),
            ("  What color is the car?  ", "The car is blue. "),
            ("Was ist das?", "Un café ☕ 🦜 日本 — naïve Zürich"),
            ("Answer briefly.", "first</s>second"),
            ("Is <s> a tag?", "Yes, <unk> too."),
            ("What is in the image?", None),
            ("What is in the image?", ""),
            ("How many?", "There are 12 apples and 3.5 pears."),
            ("Describe.", long_answer),
            ("Tabs\tand\nnewlines", "\tIndented\nanswer\n"),
            ("▁odd", "▁marker ▁▁ test"),
            (None, "A photo of a dog."),
        ]
        rows = []
        for template in ["llava-v1", "vicuna-v1"]:
            for i, (q, a) in enumerate(qa):
                n_img = 576 if i == 0 else 0 if i == 2 else 4
                rows.append(("T", template, q, a, n_img))
        for a in ["A cat sitting on a table.", "two\nlines\n", "🦜 parrot", "", None, " leading space"]:
            rows.append(("T", "plain", None, a, 4))
        rows.append(("T", "plain", "", "with empty question", 3))
        raw = [
            ("no image at all", 3, 8, 4),
            ("<image><image>two images", 14, 17, 2),
            ("<image>", 0, 0, 5),
            ("", 0, 0, 4),
            ("text <image> more <unk> </s> <s> end", 13, 33, 2),
            ("USER: <image>\nWhat? ASSISTANT: A dog.</s>", 32, 38, 3),
            ("</s></s><s>x", 4, 9, 1),
        ]
        n_rows = 0
        with open(os.path.join(outdir, "prompt.tsv"), "w", encoding="utf-8") as f:
            for _, template, q, a, n_img in rows:
                p, ans = make_prompt(template, q, a)
                toks = tokenizer_image_token(p, tok, n_img)
                lab = labels(toks, ans)
                f.write("T\t%s\t%s\t%s\t%d\t%s\t%s\n" % (
                    template, fmt(q), fmt(a), n_img, " ".join(str(t[0]) for t in toks),
                    "".join(map(str, lab))))
                n_rows += 1
            for p, tb, te, n_img in raw:
                pb = p.encode()
                ans = (len(pb[:tb].decode()), len(pb[:te].decode()))  # bytes -> chars
                toks = tokenizer_image_token(p, tok, n_img)
                lab = labels(toks, ans)
                f.write("R\t%s\t%d\t%d\t%d\t%s\t%s\n" % (
                    tok_ref.esc(p), tb, te, n_img, " ".join(str(t[0]) for t in toks),
                    "".join(map(str, lab))))
                n_rows += 1
        print("prompt.tsv: %d cases" % n_rows)


if __name__ == "__main__":
    main()
