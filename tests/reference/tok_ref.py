#!/usr/bin/python3
"""Golden values for vlmn's SentencePiece tokenizer (tests/tok/test_tok.c).

Trains two small BPE models with Debian's sentencepiece (0.1.97) using LLaMA's
normalisation settings, writes each vocabulary as a GGUF (tokenizer.ggml.* keys, as
llama.cpp's converter does) and as a plain TSV, and writes a test corpus with the ids
sentencepiece produces and the text its decoder gives back. Nothing here uses vlmn.

  /usr/bin/python3 tests/reference/tok_ref.py tests/data/tok

Corpus line formats (fields separated by TAB, text fields escaped with esc()):
  E <flags> <text> <ids> <decoded>   encode text (flags: b = add BOS, e = add EOS, u = the
                                     text is valid UTF-8 (a Python str), - none),
                                     expect ids; decode(ids) must give <decoded> ("=": the
                                     text itself)
  D <ids> <decoded>                  decode these ids (any ids, also control/byte/unk)
  L <n_ids> <fnv1a64 of ids> <n_bytes> <fnv1a64 of bytes>
                                     the long text (see long_text(): the "u" texts without
                                     b/e) encodes to these ids (each id as 4 little-endian
                                     bytes) and decodes back to these bytes
"""
import os
import random
import subprocess
import sys
import tempfile

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_py  # noqa: E402

USER_DEFINED = ["<image>", "[SEP]", "qq", "qqq", "\u2581\u2581\u2581\u2581"]
CONTROL = ["<ctrl>"]

COMMON = ("the of and to a in is it you that he was for on are with as I his they be at one "
          "have this from or had by hot word but what some we can out other were all there when "
          "up use your how said an each she which do their time if will way about many then them "
          "write would like so these her long make thing see him two has look more day could go "
          "come did number sound no most people my over know water than call first who may down "
          "side been now find any new work part take get place made live where after back little "
          "only round man year came show every good me give our under name very through just form "
          "sentence great think say help low line differ turn cause much mean before move right "
          "boy old too same tell does set three want air well also play small end put home read "
          "hand port large spell add even land here must big high such follow act why ask men "
          "change went light kind off need house picture try us again animal point mother world "
          "near build self earth father head stand own page should country found answer school "
          "grow study still learn plant cover food sun four between state keep eye never last let "
          "thought city tree cross farm hard start might story saw far sea draw left late run "
          "image photo shows cat dog person sitting standing table red blue green white black "
          "street car bus train plate pizza giraffe zebra elephant umbrella kitchen bathroom").split()
ACCENTED = ("café naïve résumé façade jalapeño Müller Straße São Paulo Zürich crème brûlée "
            "déjà vu œuvre Ångström señor niño fiancée coöperate Dvořák Łódź Ørsted Þór "
            "über schön garçon élève forêt hôtel à où").split()
CJK = ["日本語のテキスト", "東京は大きな都市です", "猫が机の上に座っている", "中文文本测试",
       "一只狗在草地上奔跑", "这是一张照片", "한국어 문장입니다", "사진 속의 고양이",
       "ひらがなとカタカナ", "漢字", "山", "水", "人", "大", "小"]
OTHER = ["Привет мир", "Ελληνικά γράμματα", "שלום", "مرحبا بالعالم", "नमस्ते दुनिया",
         "สวัสดีครับ", "Tiếng Việt có dấu", "Ünïcödé"]
EMOJI = ["😀", "🐱", "🍕", "👍", "🎉", "❤️", "🚗", "🌍", "👩‍👩‍👧", "🏳️‍🌈", "✨", "🙂"]
PUNCT = list(".,;:!?-()[]{}\"'/\\@#$%^&*_+=<>|~`") + ["...", "--", "—", "–", "«", "»", "“", "”", "’"]
# Characters that never occur in training: their pieces fall back to bytes.
RARE = ["ᚠᚢᚦ", "𐍈", "ꙮ", "𝔘𝔫𝔦", "ⴰⵣⵓⵍ", "ᓀᐦᐃᔭᐍᐏᐣ", "🦜", "🧬", "🪐", "ꦗꦮ", "\u0301", "\u200b",
        "\ufeff", "\u2028", "𓂀", "㊙", "﷽", "\x01", "\x7f", "\x00"]
SPECIAL_LOOKING = ["<s>", "</s>", "<unk>", "<ctrl>", "<0x41>", "<0xZZ>", "<image>", "[SEP]",
                   "\u2581", "\u2581\u2581", "▁hello", "<s>hello</s>", "qq", "qqq", "qqqq",
                   "qqqqq", "aqqb", "<im", "age>", "<<image>>", " ⁇ "]


def gen_word(r):
    """A pseudo-English word from common syllables (gives BPE something to merge)."""
    ons = ["", "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w",
           "st", "tr", "ch", "sh", "th", "pl", "gr", "br", "cl"]
    nuc = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "ee", "oo", "y"]
    cod = ["", "", "n", "r", "s", "t", "l", "ng", "nd", "st", "ck", "m"]
    return "".join(r.choice(ons) + r.choice(nuc) + r.choice(cod) for _ in range(r.randint(1, 3)))


def gen_sentence(r, n_words=None):
    n = n_words or r.randint(3, 18)
    out = []
    for _ in range(n):
        k = r.random()
        if k < 0.45:
            w = r.choice(COMMON)
        elif k < 0.7:
            w = gen_word(r)
        elif k < 0.76:
            w = r.choice(ACCENTED)
        elif k < 0.80:
            w = str(r.randint(0, 10 ** r.randint(1, 6)))
        elif k < 0.84:
            w = r.choice(CJK)
        elif k < 0.86:
            w = r.choice(OTHER)
        elif k < 0.88:
            w = r.choice(EMOJI)
        elif k < 0.95:
            w = r.choice(COMMON).capitalize()
        else:
            w = r.choice(COMMON) + r.choice(PUNCT)
        out.append(w)
    s = " ".join(out)
    if r.random() < 0.7:
        s = s[0].upper() + s[1:] + r.choice([".", ".", "!", "?", ",", ":", ";", ""])
    return s


def training_text(r, n_lines):
    lines = []
    for _ in range(n_lines):
        s = gen_sentence(r)
        k = r.random()
        if k < 0.05:
            s = "  " + s
        elif k < 0.08:
            s = s + "   "
        elif k < 0.1:
            s = s.replace(" ", "    ", 1)
        lines.append(s)
    return lines


def random_unicode(r, n):
    out = []
    for _ in range(n):
        k = r.random()
        if k < 0.5:
            cp = r.randint(0x20, 0x7e)
        elif k < 0.7:
            cp = r.randint(0xa0, 0x2fff)
        elif k < 0.85:
            cp = r.randint(0x3000, 0x9fff)
        elif k < 0.95:
            cp = r.randint(0x1f300, 0x1faff)
        else:
            cp = r.randint(0x10000, 0x10ffff)
        if 0xd800 <= cp <= 0xdfff:
            cp = 0x41
        out.append(chr(cp))
    return "".join(out)


def corpus_cases(r, n_random):
    """Test texts: str (valid UTF-8) or bytes (possibly invalid UTF-8)."""
    cases = ["", " ", "  ", "   ", "\n", "\t", "\n\n", " \n ", "a", " a", "a ", "  a  ",
             "hello world", "Hello World", " hello", "hello ", "hello  world", "hello\tworld",
             "hello\nworld", "hello \n world", "\t\tindented", "line1\nline2\nline3\n",
             "0", "12345", "3.14159", "1,000,000", "2024-01-01", "call 555-0123 now",
             "!!!", "?!", "...", "a.b.c", "(x)", "[y]", "{z}", "\"quoted\"", "it's", "e-mail",
             "café", "naïve", "Straße", "日本語", "中文", "한국어", "😀", "👩‍👩‍👧", "🏳️‍🌈",
             "❤️❤️❤️", "ᚠᚢᚦ", "𐍈", "\u0301", "e\u0301", "\x00", "a\x00b", "\x7f",
             "\r\n", "\u00a0", "\u3000", "\u2009thin", "   leading", "trailing   ",
             " " * 17, "\n" * 5, "\t \t \t", "A" * 300, "ab" * 200, "q" * 33, "1" * 40]
    cases += SPECIAL_LOOKING
    cases += [w for w in COMMON[:80]] + ACCENTED + CJK + OTHER + EMOJI + PUNCT + RARE
    for s in SPECIAL_LOOKING:
        cases.append("x" + s + "y")
        cases.append(" " + s + " ")
        cases.append("a " + s + " b")
    while len(cases) < n_random:
        k = r.random()
        if k < 0.35:
            s = gen_sentence(r)
        elif k < 0.45:
            s = gen_sentence(r) + "\n" + gen_sentence(r)
        elif k < 0.5:
            s = r.choice(["", " ", "  ", "\t", "\n"]) + gen_sentence(r) + r.choice(["", " ", "   ", "\n", "\t"])
        elif k < 0.55:
            s = gen_sentence(r).replace(" ", " " * r.randint(2, 5))
        elif k < 0.6:
            s = gen_sentence(r).replace(" ", r.choice(["\t", "\n", " \t", "\n "]))
        elif k < 0.68:
            s = " ".join([gen_sentence(r, 4), r.choice(RARE), gen_sentence(r, 3)])
        elif k < 0.73:
            s = " ".join([gen_sentence(r, 3), r.choice(SPECIAL_LOOKING), gen_sentence(r, 3)])
        elif k < 0.8:
            s = random_unicode(r, r.randint(1, 30))
        elif k < 0.85:
            s = "".join(chr(r.randint(0x20, 0x7e)) for _ in range(r.randint(1, 40)))
        elif k < 0.9:
            s = " ".join(str(r.randint(0, 10 ** 9)) for _ in range(r.randint(1, 6)))
        elif k < 0.94:
            b = bytearray(gen_sentence(r, 4).encode())
            for _ in range(r.randint(1, 4)):
                b.insert(r.randint(0, len(b)), r.choice([0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xf8, 0xff]))
            s = bytes(b)
        elif k < 0.96:
            s = bytes(r.randint(0, 255) for _ in range(r.randint(1, 24)))
        else:
            s = gen_sentence(r, r.randint(40, 120))
        cases.append(s)
    return cases


def long_text(lines):
    """~100 kB: the corpus' str texts joined by newlines until 100,000 bytes (the C test
    builds the same text from the E lines flagged "u" in file order)."""
    out, size = [], 0
    while size < 100000:
        for s in lines:
            out.append(s)
            size += len(s.encode()) + 1
            if size >= 100000:
                break
    return "\n".join(out)


def esc(b):
    """Escape bytes for one TSV field: \\\\ \\t \\n \\r and \\xNN for other control bytes and
    for bytes that are not part of valid UTF-8; valid multibyte UTF-8 stays raw."""
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogatepass")
    out, i = [], 0
    while i < len(b):
        c = b[i]
        n = 1
        if c >= 0x80:
            n = 2 if 0xc2 <= c <= 0xdf else 3 if 0xe0 <= c <= 0xef else 4 if 0xf0 <= c <= 0xf4 else 0
            try:
                b[i:i + n].decode("utf-8") if n else None
                ok = n > 0 and i + n <= len(b)
            except UnicodeDecodeError:
                ok = False
            if ok:
                out.append(b[i:i + n].decode("utf-8"))
                i += n
                continue
            out.append("\\x%02x" % c)
        elif c == 0x5c:
            out.append("\\\\")
        elif c == 9:
            out.append("\\t")
        elif c == 10:
            out.append("\\n")
        elif c == 13:
            out.append("\\r")
        elif c < 0x20 or c == 0x7f:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
        i += 1
    return "".join(out)


def fnv1a64_bytes(b):
    h = 0xcbf29ce484222325
    for c in b:
        h ^= c
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return h


def fnv1a64_ids(ids):
    h = 0xcbf29ce484222325
    for x in ids:
        for k in range(4):
            h ^= (x >> (8 * k)) & 0xff
            h = (h * 0x100000001b3) & 0xffffffffffffffff
    return h


def vocab_of(sp, user_defined):
    toks, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        p = sp.id_to_piece(i)
        if sp.is_unknown(i):
            t = 2
        elif sp.is_control(i):
            t = 3
        elif sp.is_unused(i):
            t = 5
        elif sp.is_byte(i):
            t = 6
        elif p in user_defined:
            t = 4
        else:
            t = 1
        toks.append(p)
        scores.append(sp.get_score(i))
        types.append(t)
    return toks, scores, types


def write_vocab(outdir, name, sp, user_defined):
    toks, scores, types = vocab_of(sp, user_defined)
    meta = {
        "general.architecture": "llama",
        "general.name": "vlmn tokenizer test vocabulary " + name,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": gguf_py.Val(gguf_py.T_ARR, toks, gguf_py.T_STR),
        "tokenizer.ggml.scores": gguf_py.Val(gguf_py.T_ARR, scores, gguf_py.T_F32),
        "tokenizer.ggml.token_type": gguf_py.Val(gguf_py.T_ARR, types, gguf_py.T_I32),
        "tokenizer.ggml.bos_token_id": gguf_py.Val(gguf_py.T_U32, sp.bos_id()),
        "tokenizer.ggml.eos_token_id": gguf_py.Val(gguf_py.T_U32, sp.eos_id()),
        "tokenizer.ggml.unknown_token_id": gguf_py.Val(gguf_py.T_U32, sp.unk_id()),
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": False,
    }
    gguf_py.write_gguf(os.path.join(outdir, name + ".gguf"), meta, {})
    with open(os.path.join(outdir, name + ".vocab.tsv"), "w", encoding="utf-8") as f:
        f.write("# id\ttype\tscore\tpiece (escaped); bos=%d eos=%d unk=%d\n"
                % (sp.bos_id(), sp.eos_id(), sp.unk_id()))
        for i, (p, s, t) in enumerate(zip(toks, scores, types)):
            f.write("%d\t%d\t%r\t%s\n" % (i, t, s, esc(p)))


def train(workdir, name, lines, vocab_size, byte_fallback, user_defined, control):
    txt = os.path.join(workdir, name + ".txt")
    with open(txt, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    args = ["spm_train", "--input=" + txt, "--model_prefix=" + os.path.join(workdir, name),
            "--vocab_size=%d" % vocab_size, "--model_type=bpe",
            "--byte_fallback=%s" % ("true" if byte_fallback else "false"),
            "--normalization_rule_name=identity", "--remove_extra_whitespaces=false",
            "--add_dummy_prefix=true", "--split_digits=true",
            "--allow_whitespace_only_pieces=true", "--character_coverage=0.9995",
            "--num_threads=1", "--minloglevel=2"]
    if user_defined:
        args.append("--user_defined_symbols=" + ",".join(user_defined))
    if control:
        args.append("--control_symbols=" + ",".join(control))
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return spm.SentencePieceProcessor(model_file=os.path.join(workdir, name + ".model"))


def write_corpus(path, sp, cases, r, n_decode):
    ids_s = lambda ids: " ".join(map(str, ids))  # noqa: E731
    n_e = n_d = 0
    with open(path, "w", encoding="utf-8") as f:
        for s in cases:
            u = "u" if isinstance(s, str) else ""
            for flags in [u] + ([u + "b", u + "be"] if r.random() < 0.05 else []):
                ids = sp.encode(s, add_bos="b" in flags, add_eos="e" in flags)
                dec = sp.decode(ids)
                d = esc(dec)
                f.write("E\t%s\t%s\t%s\t%s\n" % (flags or "-", esc(s), ids_s(ids),
                                                   "=" if d == esc(s) else d))
                n_e += 1
        # Decoding of arbitrary id sequences: control/unk first, lone and broken byte
        # pieces, pieces with and without a leading U+2581.
        n = sp.get_piece_size()
        byte_ids = [i for i in range(n) if sp.is_byte(i)]
        special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
        for _ in range(n_decode):
            ids = []
            for _ in range(r.randint(0, 12)):
                k = r.random()
                pool = byte_ids if (k < 0.4 and byte_ids) else special if k < 0.55 else range(n)
                ids.append(r.choice(pool))
            f.write("D\t%s\t%s\n" % (ids_s(ids), esc(sp.decode(ids))))
            n_d += 1
        texts = [s for s in cases if isinstance(s, str)]
        lt = long_text(texts)
        ids = sp.encode(lt)
        dec = sp.decode(ids).encode()
        f.write("L\t%d\t%016x\t%d\t%016x\n" % (len(ids), fnv1a64_ids(ids), len(dec),
                                                  fnv1a64_bytes(dec)))
    return n_e, n_d


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/data/tok"
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        # Main model: byte fallback, user-defined and control symbols (LLaMA-like).
        r = random.Random(20240501)
        sp = train(work, "bpe", training_text(r, 30000), 4000, True, USER_DEFINED, CONTROL)
        write_vocab(outdir, "bpe", sp, USER_DEFINED)
        cases = corpus_cases(random.Random(7), 2600)
        n_e, n_d = write_corpus(os.path.join(outdir, "bpe.corpus.tsv"), sp, cases,
                                random.Random(11), 400)
        print("bpe: vocab %d, %d encode cases, %d decode cases" % (sp.get_piece_size(), n_e, n_d))
        # Second model: no byte fallback (unknown pieces -> <unk>, runs merged).
        r = random.Random(99)
        sp2 = train(work, "bpe_nobf", training_text(r, 8000), 1000, False, ["qq"], [])
        write_vocab(outdir, "bpe_nobf", sp2, ["qq"])
        cases2 = corpus_cases(random.Random(8), 700)
        n_e, n_d = write_corpus(os.path.join(outdir, "bpe_nobf.corpus.tsv"), sp2, cases2,
                                random.Random(12), 150)
        print("bpe_nobf: vocab %d, %d encode cases, %d decode cases" % (sp2.get_piece_size(), n_e, n_d))


if __name__ == "__main__":
    main()
