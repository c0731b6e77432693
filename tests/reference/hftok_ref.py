#!/usr/bin/python3
"""Golden values for vlmn's Hugging Face `tokenizer.json` tokenizer (tests/tok/test_hftok.c).

A pure-Python re-implementation, written from the semantics of the Rust `tokenizers`
library (added-token extraction, normalizers, pre-tokenizers, BPE model, post-processor,
decoders), of exactly the components vlmn supports. It writes small tokenizer.json files:

  llama_legacy  LLaMA/LLaVA-hf form, built from the SentencePiece vocabulary
                tests/data/tok/bpe.vocab.tsv (tok_ref.py) as transformers' LlamaConverter
                does: normalizer Sequence[Prepend "▁", Replace " " -> "▁"], no
                pre-tokenizer, BPE with byte_fallback and fuse_unk, merges "a b" strings,
                decoder Sequence[Replace, ByteFallback, Fuse, Strip]
  llama_meta    the same vocabulary in the newer form: Metaspace pre-tokenizer
                (prepend_scheme "first"), merges as ["a", "b"] arrays, Metaspace decoder
  clip          CLIP's byte-level BPE (openai/clip-vit-*): NFC + Replace \\s+ + Lowercase,
                Split with CLIP's regex (Removed, invert), ByteLevel without regex,
                end_of_word_suffix "</w>", RobertaProcessing <|startoftext|> ... <|endoftext|>
  gpt2          GPT-2's byte-level BPE: ByteLevel(add_prefix_space, use_regex), no unk
  misc          Strip + Lowercase normalizers, Whitespace pre-tokenizer, continuing
                subword prefix "##", unk without fusing, added tokens with lstrip/rstrip,
                normalized=true and single_word, TemplateProcessing with BOS and EOS, no
                decoder

and a corpus of texts with the ids this reference produces and the decoded text; also
llama_nobf (tok_ref.py's model without byte fallback, converted the same way) and
tiny_llava (the tiny LLaVA's tokenizer.model), for comparisons with SentencePiece.
Nothing here uses vlmn.

  /usr/bin/python3 tests/reference/hftok_ref.py tests/data/hftok

Corpus lines (TAB separated, text escaped as tok_ref.py's esc()):
  E <name> <flags> <text> <ids> <decoded>   flags: b = add the post-processor's specials
                                            (vlmn: default flags), - none; <decoded>:
                                            decode(ids) with special tokens skipped, "-"
                                            where the fixture has no decoder
"""
import json
import os
import random
import sys
import unicodedata

# ---- Unicode classes (as Oniguruma's, which `tokenizers` uses for its regexes) --------

WHITE_SPACE = set([0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029,
                   0x202F, 0x205F, 0x3000] + list(range(0x2000, 0x200B)))


def is_ws(c):
    return ord(c) in WHITE_SPACE


def is_L(c):
    return unicodedata.category(c)[0] == "L"


def is_N(c):
    return unicodedata.category(c)[0] == "N"


def is_word(c):  # \w: Letter | Mark | Number | Connector_Punctuation
    cat = unicodedata.category(c)
    return cat[0] in "LMN" or cat == "Pc"


def lower_char(c):
    # Rust's char::to_lowercase (per character, full mapping, no context)
    return c.lower()


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}

# ---- regexes: the three patterns vlmn recognises, as hand-written matchers ---------------

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
CLIP_RE = (r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"
           r"[^\s\p{L}\p{N}]+")
WS_RE = r"\s+"
WHITESPACE_RE = r"\w+|[^\w\s]+"


def other(c):
    return not is_ws(c) and not is_L(c) and not is_N(c)


def run(s, i, pred):
    j = i
    while j < len(s) and pred(s[j]):
        j += 1
    return j


def contraction(s, i):
    if s[i] != "'":
        return 0
    for c in ("s", "t", "re", "ve", "m", "ll", "d"):
        if s.startswith(c, i + 1):
            return 1 + len(c)
    return 0


def match_gpt2(s, i):
    k = contraction(s, i)
    if k:
        return k
    for pred in (is_L, is_N, other):
        if s[i] == " " and i + 1 < len(s) and pred(s[i + 1]):
            return run(s, i + 1, pred) - i
        if pred(s[i]):
            return run(s, i, pred) - i
    if is_ws(s[i]):
        j = run(s, i, is_ws)
        if j == len(s) or j - i == 1:
            return j - i
        return j - i - 1
    return 0


def match_clip(s, i):
    for lit in ("<|startoftext|>", "<|endoftext|>"):
        if s.startswith(lit, i):
            return len(lit)
    k = contraction(s, i)
    if k:
        return k
    if is_L(s[i]):
        return run(s, i, is_L) - i
    if is_N(s[i]):
        return 1
    if other(s[i]):
        return run(s, i, other) - i
    return 0


def match_ws(s, i):
    return run(s, i, is_ws) - i


def match_whitespace(s, i):
    if is_word(s[i]):
        return run(s, i, is_word) - i
    if not is_ws(s[i]):
        return run(s, i, lambda c: not is_word(c) and not is_ws(c)) - i
    return 0


REGEXES = {GPT2_RE: match_gpt2, CLIP_RE: match_clip, WS_RE: match_ws, WHITESPACE_RE: match_whitespace}


def find_matches(s, pattern):
    """[(start, end, is_match)] covering s, as tokenizers' Pattern::find_matches."""
    if not s:
        return [(0, 0, False)]
    spans = []
    if "Regex" in pattern:
        m = REGEXES[pattern["Regex"]]
        i = 0
        while i < len(s):
            k = m(s, i)
            if k:
                spans.append((i, i + k))
                i += k
            else:
                i += 1
    else:
        lit = pattern["String"]
        i = s.find(lit) if lit else -1
        while i >= 0:
            spans.append((i, i + len(lit)))
            i = s.find(lit, i + len(lit))
    out, prev = [], 0
    for a, b in spans:
        if a != prev:
            out.append((prev, a, False))
        out.append((a, b, True))
        prev = b
    if prev != len(s):
        out.append((prev, len(s), False))
    return out


def split_behavior(m, behavior):
    """tokenizers' NormalizedString::split: [(start, end, is_match)] -> [(start, end)]."""
    if behavior == "Removed":
        return [(a, b) for a, b, d in m if not d]
    if behavior == "Isolated":
        return [(a, b) for a, b, d in m]
    acc = []
    prev = False
    if behavior == "MergedWithPrevious":
        for a, b, d in m:
            if d and not prev and acc:
                acc[-1] = (acc[-1][0], b)
            else:
                acc.append((a, b))
            prev = d
        return acc
    if behavior == "MergedWithNext":
        for a, b, d in reversed(m):
            if d and not prev and acc:
                acc[-1] = (a, acc[-1][1])
            else:
                acc.append((a, b))
            prev = d
        return acc[::-1]
    if behavior == "Contiguous":
        for a, b, d in m:
            if d == prev and acc:
                acc[-1] = (acc[-1][0], b)
            else:
                acc.append((a, b))
            prev = d
        return acc
    raise ValueError(behavior)


def split(s, pattern, behavior, invert=False, with_offsets=False):
    m = find_matches(s, pattern)
    if invert:
        m = [(a, b, not d) for a, b, d in m]
    out = [(a, s[a:b]) for a, b in split_behavior(m, behavior) if b > a]
    return out if with_offsets else [x for _, x in out]


# ---- normalizers ---------------------------------------------------------------------

def normalize(n, s):
    if n is None:
        return s
    t = n["type"]
    if t == "Sequence":
        for x in n["normalizers"]:
            s = normalize(x, s)
        return s
    if t == "Prepend":
        return n["prepend"] + s if s else s
    if t == "Replace":
        parts = find_matches(s, n["pattern"])
        return "".join(n["content"] if d else s[a:b] for a, b, d in parts)
    if t in ("NFC", "NFD", "NFKC", "NFKD"):
        return unicodedata.normalize(t, s)
    if t == "Lowercase":
        return "".join(lower_char(c) for c in s)
    if t == "Strip":
        if n.get("strip_left", True):
            s = s[run(s, 0, is_ws):]
        if n.get("strip_right", True):
            j = len(s)
            while j > 0 and is_ws(s[j - 1]):
                j -= 1
            s = s[:j]
        return s
    raise ValueError(t)


# ---- pre-tokenizers: list of (text, is_at_origin) -> list of the same ------------------

def pre_tokenize(p, splits):
    if p is None:
        return splits
    t = p["type"]
    out = []
    if t == "Sequence":
        for x in p["pretokenizers"]:
            splits = pre_tokenize(x, splits)
        return splits
    for s, origin in splits:
        if t == "Metaspace":
            rep = p["replacement"]
            s = s.replace(" ", rep)
            scheme = p.get("prepend_scheme", "always")
            if scheme == "always" and not s.startswith(rep):
                s = rep + s
            elif scheme == "first" and not s.startswith(rep) and origin:
                s = rep + s
            if p.get("split", True):
                parts = split(s, {"String": rep}, "MergedWithNext", with_offsets=True)
            else:
                parts = [(0, s)]
        elif t == "ByteLevel":
            if p.get("add_prefix_space", True) and not s.startswith(" "):
                s = " " + s
            parts = (split(s, {"Regex": GPT2_RE}, "Isolated", with_offsets=True)
                     if p.get("use_regex", True) else [(0, s)])
            parts = [(a, "".join(B2U[b] for b in x.encode("utf-8"))) for a, x in parts]
        elif t == "Split":
            parts = split(s, p["pattern"], p["behavior"], p.get("invert", False), True)
        elif t == "Whitespace":
            parts = split(s, {"Regex": WHITESPACE_RE}, "Removed", True, True)
        elif t == "WhitespaceSplit":
            parts = split(s, {"Regex": WS_RE}, "Removed", False, True)
        else:
            raise ValueError(t)
        for a, x in parts:
            if x:
                out.append((x, origin and a == 0))
    return out


# ---- BPE model -------------------------------------------------------------------------

class BPE:
    def __init__(self, m):
        self.vocab = m["vocab"]
        self.unk = m.get("unk_token")
        self.prefix = m.get("continuing_subword_prefix")
        self.suffix = m.get("end_of_word_suffix")
        self.fuse_unk = m.get("fuse_unk", False)
        self.byte_fallback = m.get("byte_fallback", False)
        self.ignore_merges = m.get("ignore_merges", False)
        plen = len(self.prefix) if self.prefix else 0
        self.merges = {}
        for rank, mg in enumerate(m["merges"]):
            a, b = mg.split(" ") if isinstance(mg, str) else mg
            new = a + b[plen:]
            self.merges[(self.vocab[a], self.vocab[b])] = (rank, self.vocab[new])

    def tokenize(self, w):
        if self.ignore_merges and w in self.vocab:
            return [self.vocab[w]]
        syms = []  # token ids
        unk = None
        for i, c in enumerate(w):
            s = c
            if i > 0 and self.prefix:
                s = self.prefix + s
            if i == len(w) - 1 and self.suffix:
                s = s + self.suffix
            if s in self.vocab:
                if unk is not None:
                    syms.append(unk)
                    unk = None
                syms.append(self.vocab[s])
                continue
            if self.byte_fallback:
                codes = ["<0x%02X>" % b for b in s.encode("utf-8")]
                if all(x in self.vocab for x in codes):
                    syms.extend(self.vocab[x] for x in codes)
                    continue
            if self.unk is not None:
                uid = self.vocab[self.unk]
                if unk is not None and not self.fuse_unk:
                    syms.append(unk)
                unk = uid
        if unk is not None:
            syms.append(unk)
        # merge_all: lowest rank first, then leftmost; re-check pairs as the heap would
        while True:
            best = None
            for i in range(len(syms) - 1):
                m = self.merges.get((syms[i], syms[i + 1]))
                if m and (best is None or m[0] < best[0]):
                    best = (m[0], i, m[1])
            if best is None:
                return syms
            syms[best[1]:best[1] + 2] = [best[2]]


# ---- the tokenizer ---------------------------------------------------------------------

def post_specials(p):
    """The special ids a post-processor adds before and after a single sequence."""
    if p is None or p["type"] == "ByteLevel":
        return [], []
    if p["type"] == "Sequence":
        pre, post = [], []
        for x in p["processors"]:
            a, b = post_specials(x)
            pre, post = pre + a, post + b
        return pre, post
    if p["type"] in ("RobertaProcessing", "BertProcessing"):
        return [p["cls"][1]], [p["sep"][1]]
    if p["type"] == "TemplateProcessing":
        pre, post, seen = [], [], False
        for x in p["single"]:
            if "Sequence" in x:
                seen = True
            else:
                ids = p["special_tokens"][x["SpecialToken"]["id"]]["ids"]
                (post if seen else pre).extend(ids)
        return pre, post
    raise ValueError(p["type"])


class Tokenizer:
    def __init__(self, j):
        self.j = j
        self.model = BPE(j["model"])
        self.id2tok = {v: k for k, v in j["model"]["vocab"].items()}
        self.added = j.get("added_tokens", [])
        for a in self.added:
            self.id2tok[a["id"]] = a["content"]
        self.special = set(a["id"] for a in self.added if a["special"])

    def split_added(self, s, normalized):
        """[(text, token id or None)]: leftmost-longest matches of the added tokens whose
        `normalized` flag is `normalized`, with lstrip/rstrip."""
        toks = [a for a in self.added if a.get("normalized", True) == normalized]
        out, start, i = [], 0, 0
        while i < len(s):
            best = None
            for a in toks:
                c = a["content"]
                if c and s.startswith(c, i) and (best is None or len(c) > len(best["content"])):
                    best = a
            if best is None:
                i += 1
                continue
            a, b = i, i + len(best["content"])
            i = b  # the matcher goes on after the match (aho-corasick, non-overlapping)
            if a < start:  # inside what a previous rstrip took
                continue
            if best.get("single_word") and ((a > 0 and is_word(s[a - 1])) or (b < len(s) and is_word(s[b]))):
                continue
            if best.get("lstrip"):
                while a > start and is_ws(s[a - 1]):
                    a -= 1
            if best.get("rstrip"):
                b = run(s, b, is_ws)
            if a > start:
                out.append((s[start:a], None, start))
            out.append((s[a:b], best["id"], a))
            start = b
        if start < len(s) or not s:
            out.append((s[start:], None, start))
        return out

    def encode(self, text, add_special):
        ids = []
        for seg, tid, off in self.split_added(text, False):
            if tid is not None:
                ids.append(tid)
                continue
            norm = normalize(self.j.get("normalizer"), seg)
            for piece, tid2, off2 in self.split_added(norm, True):
                if tid2 is not None:
                    ids.append(tid2)
                    continue
                if not piece:
                    continue
                for w, _ in pre_tokenize(self.j.get("pre_tokenizer"), [(piece, off == 0 and off2 == 0)]):
                    ids += self.model.tokenize(w)
        if add_special:
            pre, post = self.specials()
            ids = pre + ids + post
        return ids

    def specials(self):
        return post_specials(self.j.get("post_processor"))


    def decode(self, ids):
        toks = [self.id2tok[i] for i in ids if i not in self.special]
        d = self.j.get("decoder")
        if d is None:
            return " ".join(toks)
        return "".join(decode_chain(d, toks))


def decode_chain(d, toks):
    t = d["type"]
    if t == "Sequence":
        for x in d["decoders"]:
            toks = decode_chain(x, toks)
        return toks
    if t == "Replace":
        return ["".join(d["content"] if m else s[a:b] for a, b, m in find_matches(s, d["pattern"]))
                for s in toks]
    if t == "ByteFallback":
        out, pend = [], []

        def flush():
            if pend:
                try:
                    out.append(bytes(pend).decode("utf-8"))
                except UnicodeDecodeError:
                    out.extend(["\ufffd"] * len(pend))
                pend.clear()
        for s in toks:
            if len(s) == 6 and s.startswith("<0x") and s.endswith(">"):
                try:
                    pend.append(int(s[3:5], 16))
                    continue
                except ValueError:
                    pass
            flush()
            out.append(s)
        flush()
        return out
    if t == "Fuse":
        return ["".join(toks)]
    if t == "Strip":
        c, st, sp = d["content"], d["start"], d["stop"]
        out = []
        for s in toks:
            a = 0
            while a < min(st, len(s)) and s[a] == c:
                a += 1
            b = len(s)
            while len(s) - b < sp and b > a and s[b - 1] == c:
                b -= 1
            out.append(s[a:b])
        return out
    if t == "Metaspace":
        rep = d["replacement"]
        first = d.get("prepend_scheme", "always") != "never"
        return ["".join(("" if (i == 0 and first) else " ") if ch == rep else ch for ch in s)
                for i, s in enumerate(toks)]
    if t == "ByteLevel":
        bs = b""
        for s in toks:
            bs += bytes(U2B[c] for c in s) if all(c in U2B for c in s) else s.encode("utf-8")
        return [bs.decode("utf-8", "replace")]
    if t == "BPEDecoder":
        suf = d.get("suffix", "</w>")
        return [s.replace(suf, "" if i == len(toks) - 1 else " ") for i, s in enumerate(toks)]
    raise ValueError(t)


# ---- fixtures --------------------------------------------------------------------------

def unesc(s):
    out, i = bytearray(), 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            c = s[i + 1]
            if c == "x":
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            out += {"t": b"\t", "n": b"\n", "r": b"\r"}.get(c, c.encode())
            i += 2
            continue
        out += s[i].encode("utf-8")
        i += 1
    return bytes(out)


def esc(b):
    out = []
    for ch in b.decode("utf-8"):
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7f:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


def added(i, content, special, normalized=False, lstrip=False, rstrip=False, single_word=False):
    return {"id": i, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def read_tsv(path):
    """tok_ref.py's vocabulary TSV (id, type, score, piece)."""
    pieces, scores, types = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            i, ty, sc, p = line.rstrip("\n").split("\t")
            pieces.append(unesc(p).decode("utf-8"))
            types.append(int(ty))
            scores.append(float(sc))
    return pieces, scores, types


def read_spm_model(path):
    """The pieces of a SentencePiece ModelProto (field 1: SentencePiece {1 piece, 2 score,
    3 type}), read with a minimal protobuf decoder."""
    import struct
    data = open(path, "rb").read()

    def varint(b, i):
        v = s = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return v, i

    def fields(b):
        i = 0
        while i < len(b):
            key, i = varint(b, i)
            f, wt = key >> 3, key & 7
            if wt == 0:
                v, i = varint(b, i)
            elif wt == 1:
                v, i = b[i:i + 8], i + 8
            elif wt == 2:
                n, i = varint(b, i)
                v, i = b[i:i + n], i + n
            elif wt == 5:
                v, i = b[i:i + 4], i + 4
            else:
                raise ValueError("wire type %d" % wt)
            yield f, v
    pieces, scores, types = [], [], []
    for f, v in fields(data):
        if f != 1:
            continue
        piece, score, ty = "", 0.0, 1
        for g, w in fields(v):
            if g == 1:
                piece = w.decode("utf-8")
            elif g == 2:
                score = struct.unpack("<f", w)[0]
            elif g == 3:
                ty = w
        pieces.append(piece)
        scores.append(score)
        types.append(ty)
    return pieces, scores, types


def llama_json(pieces, scores, types):
    """transformers' LlamaConverter (legacy form) over a SentencePiece vocabulary."""
    toks, model, merges = llama_from_pieces(pieces, scores, types)
    return base_json(dict(model, merges=["%s %s" % mg for mg in merges]), toks, LLAMA_NORMALIZER, None,
                     template([("<s>", 1)], []), LLAMA_DECODER)


def llama_from_pieces(pieces, scores, types):
    vocab = {p: i for i, p in enumerate(pieces)}
    # SentencePieceExtractor.extract(vocab_scores): every split of every piece into two
    # pieces, ordered by (id left, id right) per piece, then by score (stable, descending)
    merges = []
    for i, p in enumerate(pieces):
        local = [(p[:k], p[k:], scores[i]) for k in range(1, len(p)) if p[:k] in vocab and p[k:] in vocab]
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges += local
    merges.sort(key=lambda x: x[2], reverse=True)
    toks = [added(i, p, ty != 4) for i, (p, ty) in enumerate(zip(pieces, types)) if ty in (2, 3, 4)]
    model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
             "ignore_merges": False, "vocab": vocab}
    return toks, model, [(a, b) for a, b, _ in merges]


def train_bpe(seqs_list, vocab, n_merges):
    """A tiny BPE trainer over symbol sequences (most frequent pair first, ties by the
    smaller pair); adds the merged tokens to `vocab` (dict token -> id)."""
    seqs = {}
    for s in seqs_list:
        seqs[tuple(s)] = seqs.get(tuple(s), 0) + 1
    merges = []
    for _ in range(n_merges):
        counts = {}
        for s, c in seqs.items():
            for a, b in zip(s, s[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + c
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        new = {}
        for s, c in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        seqs = new
    return merges


WORDS = ("a photo of the cat sitting on a table with red and blue plates there is one dog near "
         "the car in street picture shows people standing by house it's they're we've I'm "
         "you'll he'd don't can't won't image describe what is this shown color number two "
         "three four 2024 100 3.14 café naïve résumé Straße Zürich über schön élève hello world "
         "Hello World THE QUICK brown fox jumps over lazy dogs tokenizer merges bytes level "
         "日本語 東京 猫 中文 😀 🐱 👍 ❤️ !! ?? ... -- (x) [y] {z} \"quoted\" e-mail a/b "
         "giraffe zebra elephant umbrella kitchen bathroom pizza train bus").split()


def training_words(r):
    words = []
    for _ in range(3000):
        w = r.choice(WORDS)
        words.append(w)
    return words


def base_json(model, added_tokens, normalizer, pre_tokenizer, post, decoder):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post,
            "decoder": decoder, "model": model}


def template(pre, post):
    single = [{"SpecialToken": {"id": t, "type_id": 0}} for t, _ in pre]
    single.append({"Sequence": {"id": "A", "type_id": 0}})
    single += [{"SpecialToken": {"id": t, "type_id": 0}} for t, _ in post]
    st = {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in pre + post}
    return {"type": "TemplateProcessing", "single": single,
            "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": st}


LLAMA_NORMALIZER = {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "\u2581"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
LLAMA_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def make_fixtures(tsv):
    r = random.Random(17)
    fx = {}
    toks, model, merges = llama_from_pieces(*read_tsv(tsv))
    fx["llama_legacy"] = llama_json(*read_tsv(tsv))
    m2 = dict(model, merges=[list(mg) for mg in merges])
    ms = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    fx["llama_meta"] = base_json(m2, toks, None, ms, template([("<s>", 1)], []), dict(ms))

    words = training_words(r)
    norm_words = []
    for w in words:
        norm_words += [x for x, _ in pre_tokenize(
            {"type": "Split", "pattern": {"Regex": CLIP_RE}, "behavior": "Removed", "invert": True},
            [(normalize({"type": "Lowercase"}, w), True)])]
    base = [B2U[b] for b in range(256)]
    vocab = {c: i for i, c in enumerate(base + [c + "</w>" for c in base])}
    seqs = []
    for w in norm_words:
        sq = [B2U[x] for x in w.encode("utf-8")]
        seqs.append(sq[:-1] + [sq[-1] + "</w>"])
    mg = train_bpe(seqs, vocab, 300)
    n = len(vocab)
    vocab["<|startoftext|>"] = n
    vocab["<|endoftext|>"] = n + 1
    clip_model = {"type": "BPE", "dropout": None, "unk_token": "<|endoftext|>",
                  "continuing_subword_prefix": "", "end_of_word_suffix": "</w>", "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                  "merges": ["%s %s" % m for m in mg]}
    fx["clip"] = base_json(
        clip_model, [added(n, "<|startoftext|>", True, True), added(n + 1, "<|endoftext|>", True, False)],
        {"type": "Sequence", "normalizers": [
            {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": WS_RE}, "content": " "},
            {"type": "Lowercase"}]},
        {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": CLIP_RE}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        {"type": "RobertaProcessing", "sep": ["<|endoftext|>", n + 1], "cls": ["<|startoftext|>", n],
         "trim_offsets": False, "add_prefix_space": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})

    g_words = []
    for w in words:
        g_words += [x for x, _ in pre_tokenize({"type": "ByteLevel", "add_prefix_space": True},
                                               [(w, True)])]
    gv = {B2U[b]: b for b in range(256)}
    gm = train_bpe([list(w) for w in g_words], gv, 300)
    eot = len(gv)
    gv["<|endoftext|>"] = eot
    fx["gpt2"] = base_json(
        {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
         "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": gv,
         "merges": ["%s %s" % m for m in gm]},
        [added(eot, "<|endoftext|>", True)], None,
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})

    # misc: word pieces "a", "##b" over lower-case words
    mv = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}
    chars = sorted(set("".join(w.lower() for w in WORDS)))
    for c in chars:
        mv.setdefault(c, len(mv))
        mv.setdefault("##" + c, len(mv))
    mm = []
    for w in ["the", "photo", "cat", "dog", "table", "street", "hello", "world", "image", "tokenizer"]:
        cur = w[0]
        for c in w[1:]:
            a, b = cur, "##" + c
            new = cur + c
            if new not in mv:
                mv[new] = len(mv)
            if [a, b] not in mm:
                mm.append([a, b])
            cur = new
    nm = len(mv)
    misc_added = [added(1, "[CLS]", True), added(2, "[SEP]", True),
                  added(nm, "<mask>", True, normalized=True, lstrip=True, rstrip=False),
                  added(nm + 1, "<sep2>", False, normalized=False, lstrip=False, rstrip=True),
                  added(nm + 2, "<image>", True, normalized=False),
                  added(nm + 3, "dog", False, normalized=True, single_word=True)]
    fx["misc"] = base_json(
        {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": "##",
         "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": mv,
         "merges": mm},
        misc_added,
        {"type": "Sequence", "normalizers": [{"type": "Strip", "strip_left": True, "strip_right": True},
                                             {"type": "Lowercase"}, {"type": "NFC"}]},
        {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}]},
        template([("[CLS]", 1)], [("[SEP]", 2)]), None)
    return fx


def test_texts(r):
    texts = ["", " ", "  ", "a", " a", "a ", "hello world", "Hello World", " hello", "hello  world",
             "hello\tworld", "hello\nworld", "\n", "\t\t", "   leading", "trailing   ", " " * 9,
             "0", "12345", "3.14159", "1,000,000", "2024-01-01", "call 555-0123 now", "!!!", "?!",
             "...", "a.b.c", "(x)", "[y]", "{z}", "\"quoted\"", "it's", "IT'S", "they're", "we've",
             "I'm", "you'll", "he'd", "don't", "'s", "''", "e-mail", "a/b", "x_y", "snake_case_name",
             "café", "naïve", "Straße", "Zürich", "ÉLÈVE", "e\u0301", "cafe\u0301", "A\u030a",
             "\u0130stanbul", "ΣΑΣ", "ǅ", "日本語", "東京は大きな都市です", "中文", "한국어", "😀",
             "🐱🐱", "👩‍👩‍👧", "🏳️‍🌈", "❤️", "ᚠᚢᚦ", "𐍈", "\u00a0", "\u3000", "\u2009thin",
             "a\u00a0b", "a\u2028b", "x\r\ny", "\u200b", "\u0301", "½ ² ③", "Ⅻ", "١٢٣",
             "<s>", "</s>", "<unk>", "<s>hello</s>", "a<s>b", " <s> ", "<ctrl>", "<image>",
             "<image>\nWhat is this?", "x<image>y", "[SEP]", "qq", "qqq", "aqqb", "\u2581", "▁hello",
             "<0x41>", "<|startoftext|>", "<|endoftext|>", "<|startoftext|>a photo<|endoftext|>",
             "a photo <|endoftext|> of", "<|ENDOFTEXT|>", "[CLS]", "[cls]", "a <mask> b", "a<mask>b",
             "a   <mask>", "<MASK>", "x <sep2>   y", "<sep2>", "x<image> y",
             "USER: <image>\nDescribe the image. ASSISTANT:", "A chat between a curious human.",
             "THE QUICK BROWN FOX", "tokenizer merges", "photo of a cat", "a photo of a dog",
             "A" * 50, "ab" * 30, "1" * 20, "!" * 10, " \n \n ", "a  b   c    d"]
    words = WORDS + ["unknownword", "xyzzy", "Ångström", "Ørsted", "Þór", "Łódź", "Привет", "мир",
                     "Ελληνικά", "שלום", "مرحبا", "नमस्ते", "สวัสดี", "ꙮ", "🦜", "🧬"]
    seps = [" ", " ", " ", "  ", "\t", "\n", ", ", ". ", "!", "-", ""]
    while len(texts) < 260:
        n = r.randint(1, 12)
        s = ""
        for i in range(n):
            s += r.choice(words) + (r.choice(seps) if i + 1 < n else "")
        if r.random() < 0.1:
            s = " " + s
        if r.random() < 0.1:
            s = s.upper()
        texts.append(s)
    return texts


def main():
    outdir = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    tsv = os.path.join(here, "..", "data", "tok", "bpe.vocab.tsv")
    os.makedirs(outdir, exist_ok=True)
    fx = make_fixtures(tsv)
    # the tiny LLaVA's vocabulary (tests/data/engine/tiny.spm.model) as a tokenizer.json,
    # for a LLaVA folder that has no tokenizer.model (tests/model/test_hf_cli.sh)
    # tok_ref.py's model without byte fallback, for the SentencePiece cross-check
    with open(os.path.join(outdir, "llama_nobf.tokenizer.json"), "w", encoding="utf-8") as g:
        json.dump(llama_json(*read_tsv(os.path.join(here, "..", "data", "tok", "bpe_nobf.vocab.tsv"))), g,
                  ensure_ascii=False)
    tiny = llama_json(*read_spm_model(os.path.join(here, "..", "data", "engine", "tiny.spm.model")))
    with open(os.path.join(outdir, "tiny_llava.tokenizer.json"), "w", encoding="utf-8") as g:
        json.dump(tiny, g, ensure_ascii=False)
    r = random.Random(4)
    texts = test_texts(r)
    with open(os.path.join(outdir, "hftok.corpus.tsv"), "w", encoding="utf-8") as f:
        f.write("# written by tests/reference/hftok_ref.py; E name flags text ids decoded\n")
        for name, j in fx.items():
            path = os.path.join(outdir, name + ".tokenizer.json")
            with open(path, "w", encoding="utf-8") as g:
                json.dump(j, g, ensure_ascii=False, indent=None if name.startswith("llama") else 1)
            tok = Tokenizer(json.load(open(path, encoding="utf-8")))
            for s in texts:
                for flags in ("-", "b"):
                    ids = tok.encode(s, flags == "b")
                    dec = esc(tok.decode(ids).encode("utf-8")) if j["decoder"] is not None else "-"
                    f.write("E\t%s\t%s\t%s\t%s\t%s\n" % (name, flags, esc(s.encode("utf-8")),
                                                       " ".join(map(str, ids)), dec))
    print("wrote %d tokenizers x %d texts x 2 to %s (unicodedata %s)" % (
        len(fx), len(texts), outdir, unicodedata.unidata_version))


if __name__ == "__main__":
    main()
