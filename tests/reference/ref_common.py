"""Float64 helpers shared by the reference scripts llava_ref.py and internvl_ref.py.

The fixture writers' random weights (mat / vec from one numpy Generator, in the order
the caller draws them), llama.cpp's Q/K permutation, the text model's GGUF tensors,
.npy output, and the decoder both
text models share with HF semantics: token embeddings with the image features at the
positions whose id is -1, rotate_half RoPE, repeat_kv, a causal mask, RMSNorm and the
SwiGLU FFN (silu(gate) and silu(gate) * up, the two hooks, with pruned neurons read as
0), and greedy decoding over it. Each script supplies only how its attention's Q, K
and V come from the GGUF tensors. Nothing here uses vlmn.
"""
import math

import numpy as np
import torch

import gguf_py as G

torch.set_default_dtype(torch.float64)
D = torch.float64


def T(a):
    return torch.as_tensor(np.asarray(a), dtype=D)


def save(path, a, dtype=np.float32):
    np.save(path, np.ascontiguousarray(np.asarray(a, dtype=dtype)))


def weight_makers(rng):
    """mat(rows, cols, scale): N(0, 1) * scale / sqrt(cols); vec(n, base, scale):
    base + N(0, 1) * scale; both float32, drawn from rng."""
    def mat(rows, cols, scale=1.0):
        return (rng.standard_normal((rows, cols)) * scale / math.sqrt(cols)).astype(np.float32)

    def vec(n, base=0.0, scale=0.1):
        return (base + rng.standard_normal(n) * scale).astype(np.float32)

    return mat, vec


def permute_hf_to_gguf(w, n_head):
    """llama.cpp converter's permute: per head, rotate_half halves -> adjacent pairs."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute_gguf_to_hf(w, n_head):
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def decoder_tensors(rng, mat, vec, cfg, n_vocab, attn):
    """The text model's tensors in llama.cpp's GGUF names and the converter's Q/K
    permutation, drawn in this order: token_embd, then per layer attn(l) -> the HF
    (q, k, v) weights (v may be a function drawing it, called after attn_norm's draw),
    attn_norm, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down; then output_norm
    and, unless cfg["tie_output"], output."""
    E, H, HKV, FF, L = cfg["n_embd"], cfg["n_head"], cfg["n_head_kv"], cfg["n_ff"], cfg["n_layer"]
    wt, F32 = cfg["wtype"], G.GGML_F32
    tensors = [("token_embd.weight", (rng.standard_normal((n_vocab, E)) * 0.5).astype(np.float32), wt)]
    for l in range(L):
        p = f"blk.{l}."
        q, k, v = attn(l)
        tensors += [
            (p + "attn_norm.weight", vec(E, 1.0), F32),
            (p + "attn_q.weight", permute_hf_to_gguf(q, H), wt),
            (p + "attn_k.weight", permute_hf_to_gguf(k, HKV), wt),
            (p + "attn_v.weight", v() if callable(v) else v, wt),
            (p + "attn_output.weight", mat(E, q.shape[0]), wt),
            (p + "ffn_norm.weight", vec(E, 1.0), F32),
            (p + "ffn_gate.weight", mat(FF, E, 2.0), wt),
            (p + "ffn_up.weight", mat(FF, E), wt),
            (p + "ffn_down.weight", mat(E, FF), wt),
        ]
    tensors.append(("output_norm.weight", vec(E, 1.0), F32))
    if not cfg.get("tie_output"):
        tensors.append(("output.weight", mat(n_vocab, E), wt))
    return tensors


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def decoder_forward(tm, arch, ids, img_emb, qkv, mask=None, n_logits=2):
    """The text decoder of GGUF reader tm (metadata keys under `arch`) on ids, the image
    features img_emb (rows in order) at the positions with id -1. qkv(t, p, h, Tn)
    returns layer p's q [H, T, hd], k and v [HKV, T, hd] before RoPE from the normed h
    (t: tensor name -> float64). mask: layer -> neurons zeroed after silu(gate).
    Returns (silu[L,T,FF], swiglu[L,T,FF], logits of the last n_logits positions)."""
    md = tm.metadata
    E = md[arch + ".embedding_length"]
    L = md[arch + ".block_count"]
    H = md[arch + ".attention.head_count"]
    HKV = md[arch + ".attention.head_count_kv"]
    eps = float(np.float32(md[arch + ".attention.layer_norm_rms_epsilon"]))
    base = float(np.float32(md.get(arch + ".rope.freq_base", 10000.0)))
    hd = E // H
    t = lambda n: T(tm.tensor(n))  # noqa: E731
    emb = t("token_embd.weight")
    rows, k_img = [], 0
    for i in ids:                      # input_embeds[selected] = image features
        if i < 0:
            rows.append(img_emb[k_img])
            k_img += 1
        else:
            rows.append(emb[i])
    assert k_img == (img_emb.shape[0] if img_emb is not None else 0)
    x = torch.stack(rows)
    Tn = x.shape[0]
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=D) / hd))
    fr = torch.outer(torch.arange(Tn, dtype=D), inv_freq)
    embr = torch.cat([fr, fr], -1)
    cos, sin = embr.cos(), embr.sin()
    causal = torch.full((Tn, Tn), -math.inf).triu(1)

    def rms(z, w):
        return z / torch.sqrt((z * z).mean(-1, keepdim=True) + eps) * w

    silu_all, sw_all = [], []
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, t(p + "attn_norm.weight"))
        q, k, v = qkv(t, p, h, Tn)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // HKV, 0)                 # repeat_kv
        v = v.repeat_interleave(H // HKV, 0)
        s = q @ k.transpose(1, 2) / math.sqrt(hd) + causal
        a = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(Tn, H * hd)
        x = x + a @ t(p + "attn_output.weight").T
        h = rms(x, t(p + "ffn_norm.weight"))
        g = torch.nn.functional.silu(h @ t(p + "ffn_gate.weight").T)
        if mask is not None and l in mask:
            g[:, mask[l]] = 0.0                               # pruned neurons read 0
        sw = g * (h @ t(p + "ffn_up.weight").T)
        silu_all.append(g)
        sw_all.append(sw)
        x = x + sw @ t(p + "ffn_down.weight").T
    x = rms(x, t("output_norm.weight"))
    out_w = t("output.weight") if "output.weight" in tm.tensors else emb
    return torch.stack(silu_all), torch.stack(sw_all), x[-n_logits:] @ out_w.T


def greedy_decode(forward, tm, ids, img, stops, max_new):
    """HF generate(do_sample=False) semantics: re-run the whole prefix with forward(tm,
    seq, img, None, n_logits=1), take the first argmax of the last position's logits,
    until a token of `stops` (not kept) or max_new tokens. Returns (tokens, the top-2
    logit margin of every step, the stop token or None)."""
    seq, out, margins, stop = list(ids), [], [], None
    for _ in range(max_new):
        _, _, lg = forward(tm, seq, img, None, n_logits=1)
        lg = lg[0]
        top = torch.topk(lg, 2)
        margins.append(float(top.values[0] - top.values[1]))
        t = int(torch.argmax(lg))
        if t in stops:
            stop = t
            break
        out.append(t)
        seq.append(t)
    return out, margins, stop
