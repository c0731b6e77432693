#!/usr/bin/python3
"""Fixtures for `vlmn info` made with the independent Python GGUF writer
(tests/reference/gguf_py.py), not with vlmn's writer:

  tests/data/gguf/fixture.gguf       every metadata value type, nested arrays, u64/i64
                                     extremes, unicode and control characters, arrays
                                     of 64 and 65 elements, five tensors, alignment 64
  tests/data/gguf/fixture.info.json  the exact line `vlmn info --json fixture.gguf`
                                     must print (format: docs/gguf.md), produced here
                                     from the values written, not from vlmn's output
  tests/data/gguf/bad_*.gguf         hostile files that `vlmn info` must reject
  fuzz/corpus/fuzz_gguf/*.gguf       small valid seeds for the fuzz target

Run: /usr/bin/python3 tests/reference/make_gguf_fixture.py
"""
import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_py as G  # noqa: E402
from gguf_py import Val  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "gguf")
SEEDS = os.path.join(ROOT, "fuzz", "corpus", "fuzz_gguf")
ALIGN = 64
ARRAY_MAX = 64  # docs/gguf.md: longer arrays are summarised
VT_NAMES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"]
TYPE_NAMES = {G.GGML_F32: "F32", G.GGML_F16: "F16", G.GGML_BF16: "BF16", G.GGML_Q8_0: "Q8_0"}


def A(elem_type, values):
    return Val(G.T_ARR, values, elem_type)


rng = np.random.default_rng(7)
vocab = ["<unk>", "<s>", "</s>"] + ["\u2581tok%d" % i for i in range(97)]

METADATA = {
    "general.architecture": "llama",
    "general.alignment": Val(G.T_U32, ALIGN),
    "general.name": "fixture h\u00e9llo \u2581w\u00f6rld \U0001F600",
    "llama.context_length": Val(G.T_U32, 4096),
    "llama.embedding_length": Val(G.T_U32, 32),
    "llama.attention.layer_norm_rms_epsilon": Val(G.T_F32, 1e-5),
    "llama.rope.freq_base": Val(G.T_F32, 10000.0),
    "t.u8": Val(G.T_U8, 255),
    "t.i8": Val(G.T_I8, -128),
    "t.u16": Val(G.T_U16, 65535),
    "t.i16": Val(G.T_I16, -32768),
    "t.u32": Val(G.T_U32, 4294967295),
    "t.i32": Val(G.T_I32, -2147483648),
    "t.u64.max": Val(G.T_U64, 2**64 - 1),
    "t.u64.zero": Val(G.T_U64, 0),
    "t.i64.min": Val(G.T_I64, -2**63),
    "t.i64.max": Val(G.T_I64, 2**63 - 1),
    "t.f32": Val(G.T_F32, 0.1),
    "t.f32.neg_zero": Val(G.T_F32, -0.0),
    "t.f32.subnormal": Val(G.T_F32, 1e-45),
    "t.f32.inf": Val(G.T_F32, math.inf),
    "t.f32.ninf": Val(G.T_F32, -math.inf),
    "t.f32.nan": Val(G.T_F32, math.nan),
    "t.f64": Val(G.T_F64, 0.1),
    "t.f64.big": Val(G.T_F64, 1e300),
    "t.f64.subnormal": Val(G.T_F64, -2.5e-310),
    "t.bool.true": Val(G.T_BOOL, True),
    "t.bool.false": Val(G.T_BOOL, False),
    "t.str.empty": "",
    "t.str.escapes": "tab\there\nnl \"q\" back\\slash \x01 \x1f \x7f /",
    "t.\u043a\u043b\u044e\u0447": "unicode key",
    "t.arr.empty": A(G.T_U32, []),
    "t.arr.u8": A(G.T_U8, [0, 1, 255]),
    "t.arr.i8": A(G.T_I8, [-128, 0, 127]),
    "t.arr.u16": A(G.T_U16, [0, 65535]),
    "t.arr.i16": A(G.T_I16, [-32768, 32767]),
    "t.arr.u32": A(G.T_U32, [0, 4294967295]),
    "t.arr.i32": A(G.T_I32, [-2147483648, 2147483647]),
    "t.arr.u64": A(G.T_U64, [0, 2**64 - 1]),
    "t.arr.i64": A(G.T_I64, [-2**63, 2**63 - 1]),
    "t.arr.f32": A(G.T_F32, [1.5, -0.25, 3.4028234663852886e38]),
    "t.arr.f64": A(G.T_F64, [1.0 / 3, -1e-300]),
    "t.arr.bool": A(G.T_BOOL, [True, False, True]),
    "t.arr.str": A(G.T_STR, ["a", "", "\u2581\u00e9\U0001F600", "x\ny"]),
    "t.arr.64": A(G.T_I32, list(range(64))),
    "t.arr.65": A(G.T_I32, list(range(65))),
    "t.nested": A(G.T_ARR, [A(G.T_I16, [1, -2, 3]), A(G.T_STR, ["p", "q"]),
                            A(G.T_ARR, [A(G.T_BOOL, [True, False]), A(G.T_U64, [])]),
                            A(G.T_U8, list(range(70)))]),
    "tokenizer.ggml.model": "llama",
    "tokenizer.ggml.tokens": A(G.T_STR, vocab),
    "tokenizer.ggml.scores": A(G.T_F32, [float(-i) for i in range(len(vocab))]),
    "tokenizer.ggml.token_type": A(G.T_I32, [2, 3, 3] + [1] * 97),
    "tokenizer.ggml.bos_token_id": Val(G.T_U32, 1),
    "tokenizer.ggml.eos_token_id": Val(G.T_U32, 2),
    "tokenizer.ggml.unknown_token_id": Val(G.T_U32, 0),
    "tokenizer.ggml.add_bos_token": Val(G.T_BOOL, True),
}

TENSORS = [
    ("token_embd.weight", (rng.standard_normal((100, 32)) * 0.1).astype(np.float32), G.GGML_F16),
    ("blk.0.attn_q.weight", rng.standard_normal((32, 32)).astype(np.float32), G.GGML_Q8_0),
    ("blk.0.attn_norm.weight", rng.standard_normal(37).astype(np.float32), G.GGML_F32),
    ("blk.0.ffn_up.weight", rng.standard_normal((3, 37)).astype(np.float32), G.GGML_BF16),
    ("v.patch_embd.weight", rng.standard_normal((2, 3, 5, 7)).astype(np.float32), G.GGML_F32),
]


# ---- expected JSON, in the canonical form of docs/gguf.md ----------------------------

def jstr(s):
    return json.dumps(s, ensure_ascii=False)


def jfloat(x):
    if math.isnan(x):
        return '"nan"'
    if math.isinf(x):
        return '"inf"' if x > 0 else '"-inf"'
    return "%.17g" % x


def jscalar(vt, v):
    if vt == G.T_STR:
        return jstr(v)
    if vt == G.T_BOOL:
        return "true" if v else "false"
    if vt == G.T_F32:
        return jfloat(float(np.float32(v)))  # the value as stored (f32), printed as a double
    if vt == G.T_F64:
        return jfloat(float(v))
    return str(int(v))


def jval(v):
    v = G._infer(v)
    if v.vtype != G.T_ARR:
        return jscalar(v.vtype, v.value)
    items = v.value
    if len(items) > ARRAY_MAX:
        return '{"type":%s,"count":%d}' % (jstr(VT_NAMES[v.elem_type]), len(items))
    if v.elem_type == G.T_ARR:
        return "[" + ",".join(jval(e) for e in items) + "]"
    return "[" + ",".join(jscalar(v.elem_type, e.value if isinstance(e, Val) else e) for e in items) + "]"


def expected_json(fname):
    md = ",".join("%s:%s" % (jstr(k), jval(v)) for k, v in METADATA.items())
    ts, off = [], 0
    for name, arr, t in TENSORS:
        off = (off + ALIGN - 1) // ALIGN * ALIGN
        nbytes = G.tensor_nbytes(t, arr.size)
        ts.append('{"name":%s,"type":%s,"shape":[%s],"offset":%d,"bytes":%d}' % (
            jstr(name), jstr(TYPE_NAMES[t]), ",".join(str(d) for d in arr.shape), off, nbytes))
        off += nbytes
    arch = METADATA["general.architecture"]
    return ('{"file":%s,"version":3,"alignment":%d,"architecture":%s,"metadata":{%s},"tensors":[%s]}\n'
            % (jstr(fname), ALIGN, jstr(arch), md, ",".join(ts)))


# ---- hostile files -------------------------------------------------------------------

def header(n_t, n_kv, version=3):
    return b"GGUF" + struct.pack("<IQQ", version, n_t, n_kv)


def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


def tinfo(name, dims, t, off):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", t, off)


def pad(b, a=32):
    return b + b"\0" * ((-len(b)) % a)


def bad_files(valid):
    kv_arch = s("general.architecture") + struct.pack("<I", G.T_STR) + s("llama")
    f = {}
    f["truncated"] = valid[: len(valid) // 2]
    f["bad_magic"] = b"GGUX" + valid[4:]
    f["version1"] = b"GGUF" + struct.pack("<I", 1) + valid[8:]
    f["huge_kv_count"] = header(0, 2**64 - 1) + kv_arch
    f["kv_count_past_end"] = header(0, 1000) + kv_arch
    f["string_len_max"] = header(0, 1) + s("k") + struct.pack("<IQ", G.T_STR, 2**64 - 1) + b"abc"
    f["bad_value_type"] = header(0, 1) + s("k") + struct.pack("<I", 13) + b"\0" * 8
    f["bad_tensor_type"] = pad(header(1, 1) + kv_arch + tinfo("w", [4], 99, 0)) + b"\0" * 16
    f["bad_ndims"] = pad(header(1, 0) + s("w") + struct.pack("<I", 5) + struct.pack("<5Q", 1, 1, 1, 1, 1) +
                         struct.pack("<IQ", 0, 0)) + b"\0" * 4
    f["zero_dim"] = pad(header(1, 0) + tinfo("w", [4, 0], 0, 0)) + b"\0" * 16
    f["dims_overflow"] = pad(header(1, 0) + tinfo("w", [2**32, 2**32], 0, 0)) + b"\0" * 16
    f["offset_past_end"] = pad(header(1, 0) + tinfo("w", [4], 0, 32)) + b"\0" * 16
    f["misaligned"] = pad(header(1, 0) + tinfo("w", [4], 0, 8)) + b"\0" * 32
    f["overlap"] = pad(header(2, 0) + tinfo("a", [16], 0, 0) + tinfo("b", [4], 0, 32)) + b"\0" * 64
    f["duplicate_key"] = header(0, 2) + kv_arch + kv_arch
    f["duplicate_tensor"] = pad(header(2, 0) + tinfo("a", [8], 0, 0) + tinfo("a", [8], 0, 32)) + b"\0" * 64
    f["alignment_not_pow2"] = pad(header(0, 1) + s("general.alignment") + struct.pack("<II", G.T_U32, 3))
    f["alignment_wrong_type"] = pad(header(0, 1) + s("general.alignment") + struct.pack("<I", G.T_STR) + s("32"))
    f["nested_too_deep"] = header(0, 1) + s("k") + struct.pack("<I", G.T_ARR) + \
        struct.pack("<IQ", G.T_ARR, 1) * 9 + struct.pack("<IQ", G.T_U8, 0)
    return f


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(SEEDS, exist_ok=True)
    path = os.path.join(OUT, "fixture.gguf")
    G.write_gguf(path, METADATA, TENSORS, alignment=ALIGN)
    with open(os.path.join(OUT, "fixture.info.json"), "w", encoding="utf-8") as fh:
        fh.write(expected_json("fixture.gguf"))
    # cross-check with the independent reader: every value and tensor reads back
    r = G.GGUFReader(path)
    assert list(r.metadata) == list(METADATA)
    for name, arr, t in TENSORS:
        back = r.tensor(name)
        assert back.shape == arr.shape, name
    with open(path, "rb") as fh:
        valid = fh.read()
    for name, data in bad_files(valid).items():
        with open(os.path.join(OUT, "bad_%s.gguf" % name), "wb") as fh:
            fh.write(data)
    # fuzz seeds: small valid files (v3, v2, no tensors, nested arrays)
    small_md = {"general.architecture": "llama", "general.alignment": Val(G.T_U32, 32),
                "a.nested": A(G.T_ARR, [A(G.T_I16, [1, 2]), A(G.T_STR, ["x"])]),
                "a.f": Val(G.T_F64, 2.5), "a.b": Val(G.T_BOOL, True), "a.s": A(G.T_STR, ["p", "q"])}
    small_t = [("w.f32", np.arange(37, dtype=np.float32), G.GGML_F32),
               ("w.q8", np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), G.GGML_Q8_0),
               ("w.f16", np.ones((2, 3), np.float32), G.GGML_F16),
               ("w.bf16", np.ones(5, np.float32), G.GGML_BF16)]
    G.write_gguf(os.path.join(SEEDS, "small_v3.gguf"), small_md, small_t)
    G.write_gguf(os.path.join(SEEDS, "small_v2.gguf"), {"general.architecture": "clip"}, small_t[:2], version=2)
    G.write_gguf(os.path.join(SEEDS, "meta_only.gguf"), small_md, [])
    G.write_gguf(os.path.join(SEEDS, "one_tensor.gguf"), {}, small_t[1:2])
    # every dequantisable type (raw random blocks), two rows each, hand-assembled
    types = [(0, 1, 4), (1, 1, 2), (30, 1, 2), (8, 32, 34), (2, 32, 18), (3, 32, 20), (6, 32, 22),
             (7, 32, 24), (12, 256, 144), (13, 256, 176), (14, 256, 210)]
    infos, blobs, off = b"", b"", 0
    for t, bv, bb in types:
        off = (off + 31) // 32 * 32
        infos += tinfo("t%d" % t, [bv, 2], t, off)
        blob = rng.integers(0, 256, 2 * bb, dtype=np.uint8).tobytes()
        blobs += b"\0" * (off - len(blobs)) + blob
        off += len(blob)
    with open(os.path.join(SEEDS, "all_types.gguf"), "wb") as fh:
        fh.write(pad(header(len(types), 1) + s("general.architecture") + struct.pack("<I", G.T_STR) +
                     s("llama") + infos) + blobs)


if __name__ == "__main__":
    main()
