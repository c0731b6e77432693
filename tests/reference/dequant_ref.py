#!/usr/bin/python3
"""Golden values for vlmn's dequantisation and scalar conversions, computed with
NumPy (and torch for bf16) from the ggml block layouts as documented in the GGUF spec /
ggml-common.h, independently of vlmn's C code.

Writes tests/data/tensor/:
  dq_<TYPE>.bin   "VLDQ", u32 type id, u32 n values, u32 raw bytes, raw blocks, f32 expected
  conv_f16.bin    "VLCV", u32 n, f32 inputs (bit patterns), u16 f16 bits (numpy RNE),
                  u16 bf16 bits (torch RNE)
  q8_0_quant.bin  "VLQ8", u32 n, f32 inputs, expected Q8_0 bytes (ggml rule)

Run: /usr/bin/python3 tests/reference/dequant_ref.py [outdir]
"""
import os
import struct
import sys

import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "tensor")
rng = np.random.default_rng(20261125)
f32 = np.float32


def f16_field(n, scale=0.05):
    """Random finite f16 scale fields (as raw little-endian bytes, and their values)."""
    v = (rng.standard_normal(n) * scale).astype(np.float16)
    return v.view(np.uint8).reshape(n, 2), v.astype(np.float32)


def rand_u8(*shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


# ---- plain types: rows of 37 values ------------------------------------------------

def case_f32(n):
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    x[:4] = [0.0, -0.0, np.inf, -np.inf]
    return x.tobytes(), x


def case_f16(n):
    bits = rng.integers(0, 0x10000, size=n, dtype=np.uint32).astype(np.uint16)
    bits[:8] = [0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff, 0x7c00, 0xfc00]  # 0,-0,subn,norm,max,inf
    bits = np.where((bits & 0x7c00) == 0x7c00, bits & 0xfc00, bits).astype(np.uint16)  # no NaN
    return bits.tobytes(), bits.view(np.float16).astype(np.float32)


def case_bf16(n):
    bits = rng.integers(0, 0x10000, size=n, dtype=np.uint32).astype(np.uint16)
    bits = np.where((bits & 0x7f80) == 0x7f80, bits & 0xff80, bits).astype(np.uint16)  # no NaN
    exp = (bits.astype(np.uint32) << 16).view(np.float32)
    return bits.tobytes(), exp


# ---- 32-value blocks ---------------------------------------------------------------

def case_q8_0(nb):
    dr, d = f16_field(nb)
    q = rng.integers(-128, 128, size=(nb, 32)).astype(np.int8)
    raw = np.concatenate([dr, q.view(np.uint8)], axis=1)
    return raw.tobytes(), (d[:, None] * q.astype(np.float32)).reshape(-1)


def nibbles(qs):
    """qs [nb,16] -> values [nb,32]: value j<16 is the low nibble of byte j, value
    j>=16 the high nibble of byte j-16."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32)


def fifth_bits(qh_bytes):
    """qh [nb,4] little-endian u32; bit j is the 5th bit of value j."""
    qh = qh_bytes.astype(np.uint32)
    word = qh[:, 0] | (qh[:, 1] << 8) | (qh[:, 2] << 16) | (qh[:, 3] << 24)
    return ((word[:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.int32)


def case_q4_0(nb):
    dr, d = f16_field(nb)
    qs = rand_u8(nb, 16)
    raw = np.concatenate([dr, qs], axis=1)
    return raw.tobytes(), ((nibbles(qs) - 8).astype(np.float32) * d[:, None]).reshape(-1)


def case_q4_1(nb):
    dr, d = f16_field(nb)
    mr, m = f16_field(nb, 0.5)
    qs = rand_u8(nb, 16)
    raw = np.concatenate([dr, mr, qs], axis=1)
    return raw.tobytes(), (nibbles(qs).astype(np.float32) * d[:, None] + m[:, None]).reshape(-1)


def case_q5_0(nb):
    dr, d = f16_field(nb)
    qh = rand_u8(nb, 4)
    qs = rand_u8(nb, 16)
    raw = np.concatenate([dr, qh, qs], axis=1)
    q = nibbles(qs) | (fifth_bits(qh) << 4)
    return raw.tobytes(), ((q - 16).astype(np.float32) * d[:, None]).reshape(-1)


def case_q5_1(nb):
    dr, d = f16_field(nb)
    mr, m = f16_field(nb, 0.5)
    qh = rand_u8(nb, 4)
    qs = rand_u8(nb, 16)
    raw = np.concatenate([dr, mr, qh, qs], axis=1)
    q = nibbles(qs) | (fifth_bits(qh) << 4)
    return raw.tobytes(), (q.astype(np.float32) * d[:, None] + m[:, None]).reshape(-1)


# ---- 256-value super-blocks ----------------------------------------------------------

def k_scales(sc12):
    """12 packed bytes -> 8 six-bit scales and 8 six-bit mins. Scales/mins 0..3 are the
    low 6 bits of bytes 0..3 / 4..7; for 4..7 the low 4 bits come from the low / high
    nibble of bytes 8..11 and the top 2 bits from the top bits of bytes 0..3 / 4..7."""
    b = sc12.astype(np.int32)
    scales = np.zeros((b.shape[0], 8), np.int32)
    mins = np.zeros((b.shape[0], 8), np.int32)
    for j in range(4):
        scales[:, j] = b[:, j] & 63
        mins[:, j] = b[:, j + 4] & 63
        scales[:, j + 4] = (b[:, j + 8] & 0x0F) | ((b[:, j] >> 6) << 4)
        mins[:, j + 4] = (b[:, j + 8] >> 4) | ((b[:, j + 4] >> 6) << 4)
    return scales, mins


def k4_values(qs):
    """qs [nb,128]: four 32-byte groups; group g holds sub-block 2g in its low nibbles and
    sub-block 2g+1 in its high nibbles. -> [nb, 8, 32]."""
    g = qs.reshape(-1, 4, 32).astype(np.int32)
    out = np.empty((qs.shape[0], 8, 32), np.int32)
    out[:, 0::2] = g & 0x0F
    out[:, 1::2] = g >> 4
    return out


def case_q4_k(nb):
    dr, d = f16_field(nb, 0.01)
    mr, dmin = f16_field(nb, 0.01)
    sc = rand_u8(nb, 12)
    qs = rand_u8(nb, 128)
    raw = np.concatenate([dr, mr, sc, qs], axis=1)
    s, m = k_scales(sc)
    q = k4_values(qs).astype(np.float32)
    d1 = d[:, None] * s.astype(np.float32)
    m1 = dmin[:, None] * m.astype(np.float32)
    y = d1[:, :, None] * q - m1[:, :, None]
    return raw.tobytes(), y.reshape(-1)


def case_q5_k(nb):
    dr, d = f16_field(nb, 0.01)
    mr, dmin = f16_field(nb, 0.01)
    sc = rand_u8(nb, 12)
    qh = rand_u8(nb, 32)
    qs = rand_u8(nb, 128)
    raw = np.concatenate([dr, mr, sc, qh, qs], axis=1)
    s, m = k_scales(sc)
    q = k4_values(qs)
    # sub-block k, value l: 5th bit is bit k of qh[l]
    hb = (qh.astype(np.int32)[:, None, :] >> np.arange(8)[None, :, None]) & 1
    q = (q + (hb << 4)).astype(np.float32)
    d1 = d[:, None] * s.astype(np.float32)
    m1 = dmin[:, None] * m.astype(np.float32)
    y = d1[:, :, None] * q - m1[:, :, None]
    return raw.tobytes(), y.reshape(-1)


def case_q6_k(nb):
    ql = rand_u8(nb, 128)
    qh = rand_u8(nb, 64)
    sc = rng.integers(-128, 128, size=(nb, 16)).astype(np.int8)
    dr, d = f16_field(nb, 0.002)
    raw = np.concatenate([ql, qh, sc.view(np.uint8), dr], axis=1)
    y = np.empty((nb, 256), np.float32)
    for b in range(nb):
        for i in range(256):
            half, r = divmod(i, 128)       # which 128-value half
            k, l = divmod(r, 32)           # quarter k (0..3), position l (0..31)
            lbyte = ql[b, half * 64 + l + 32 * (k & 1)]
            low = (lbyte & 0x0F) if k < 2 else (lbyte >> 4)
            high = (qh[b, half * 32 + l] >> (2 * k)) & 3
            q = int(low | (high << 4)) - 32
            scale = int(sc[b, half * 8 + l // 16 + 2 * k])
            y[b, i] = f32(f32(d[b] * f32(scale)) * f32(q))
    return raw.tobytes(), y.reshape(-1)


CASES = [  # name, type id, generator, count (values for plain types, blocks otherwise), block values
    ("F32", 0, case_f32, 37, 1),
    ("F16", 1, case_f16, 37, 1),
    ("BF16", 30, case_bf16, 37, 1),
    ("Q8_0", 8, case_q8_0, 5, 32),
    ("Q4_0", 2, case_q4_0, 5, 32),
    ("Q4_1", 3, case_q4_1, 5, 32),
    ("Q5_0", 6, case_q5_0, 5, 32),
    ("Q5_1", 7, case_q5_1, 5, 32),
    ("Q4_K", 12, case_q4_k, 3, 256),
    ("Q5_K", 13, case_q5_k, 3, 256),
    ("Q6_K", 14, case_q6_k, 3, 256),
]


def conversions():
    """f32 -> f16 (numpy, RNE) and f32 -> bf16 (torch, RNE) on edge cases + random."""
    special = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 65536.0, 1e9, -1e9,
               2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001, 2.0 ** -26, 3 * 2.0 ** -25,
               1e-8, 6.1e-5, 0.1, 1.0 / 3, np.inf, -np.inf, 1.00048828125, 1.00146484375,
               np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45]
    x = np.array(special, dtype=np.float32)
    rnd = rng.integers(0, 2 ** 32, size=3000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    rnd = rnd[np.isfinite(rnd)]
    # values near the f16 range and exact halfway patterns
    near = (rng.standard_normal(1000) * np.exp2(rng.integers(-26, 17, 1000))).astype(np.float32)
    halfway = (rng.integers(0, 2 ** 16, 500).astype(np.uint32) << 13 | 0x1000).view(np.float32)
    halfway = halfway[np.isfinite(halfway)]
    bhalf = (rng.integers(0, 2 ** 16, 500).astype(np.uint32) << 16 | 0x8000).view(np.float32)
    bhalf = bhalf[np.isfinite(bhalf)]
    x = np.concatenate([x, rnd, near, halfway, bhalf]).astype(np.float32)
    with np.errstate(over="ignore"):
        h = x.astype(np.float16).view(np.uint16)
    b = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    return x, h, b


def q8_0_quant(n_blocks):
    x = (rng.standard_normal(n_blocks * 32) * rng.uniform(0.01, 10, n_blocks * 32)).astype(np.float32)
    x[32:64] = 0.0  # an all-zero block: d = 0, q = 0
    out = bytearray()
    for blk in x.reshape(-1, 32):
        amax = f32(np.max(np.abs(blk)))
        d = f32(amax / f32(127.0))
        inv = f32(f32(1.0) / d) if d != 0 else f32(0.0)
        v = (blk * inv).astype(np.float32).astype(np.float64)
        q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)  # C roundf: halves away from 0
        out += np.float16(d).tobytes() + q.tobytes()
    return x, bytes(out)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, tid, gen, count, bv in CASES:
        raw, exp = gen(count)
        n = count * bv if bv > 1 else count
        exp = np.asarray(exp, dtype=np.float32)
        assert exp.size == n, (name, exp.size, n)
        with open(os.path.join(OUT, f"dq_{name}.bin"), "wb") as f:
            f.write(b"VLDQ" + struct.pack("<III", tid, n, len(raw)) + raw + exp.astype("<f4").tobytes())
    x, h, b = conversions()
    with open(os.path.join(OUT, "conv_f16.bin"), "wb") as f:
        f.write(b"VLCV" + struct.pack("<I", x.size) + x.astype("<f4").tobytes() +
                h.astype("<u2").tobytes() + b.astype("<u2").tobytes())
    x, q = q8_0_quant(6)
    with open(os.path.join(OUT, "q8_0_quant.bin"), "wb") as f:
        f.write(b"VLQ8" + struct.pack("<I", x.size) + x.astype("<f4").tobytes() + q)


if __name__ == "__main__":
    main()
