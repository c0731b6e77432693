#!/usr/bin/python3
"""Tiny LLaVA-1.5 fixtures and an independent float64 reference forward pass.

Writes tests/data/engine/: tiny GGUF pairs (text `llama` + legacy/new `clip` mmproj) in
llama.cpp's layout, preprocessed pixel inputs, token ids, and golden FFN activations
computed here in float64 with HF transformers semantics (CLIPVisionModel,
LlavaMultiModalProjector, LlamaModel), reading the GGUF files back through gguf_py and
un-permuting Q/K itself. Nothing here uses vlmn. Run:
    /usr/bin/python3 tests/reference/llava_ref.py [OUTDIR]
Greedy continuations of the committed fixture models (OUTDIR/greedy.json):
    /usr/bin/python3 tests/reference/llava_ref.py --greedy [OUTDIR]
"""
import io
import json
import math
import os
import sys

import numpy as np
import torch
import sentencepiece as spm
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_py as G  # noqa: E402
from ref_common import (T, save, weight_makers, unpermute_gguf_to_hf, decoder_tensors,  # noqa: E402
                        decoder_forward, greedy_decode)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the human's questions.")

# ---------------------------------------------------------------------------------------
# Tokenizer: a real SentencePiece BPE model with byte fallback (LLaMA's normaliser
# settings: identity, dummy prefix, no whitespace folding), unk=0 bos=1 eos=2.
CORPUS = [
    SYSTEM, "USER: ASSISTANT:", "What is in the image?", "Describe the image.",
    "A red square on a blue background.", "Two cats sleep on a sofa.",
    "What colour is the car?", "The car is green and the sky is blue.",
    "A dog runs in the park with a ball.", "Is there a person in the picture?",
    "Yes, a man is standing next to a tree.", "The image shows a small house.",
    "Describe the picture in detail.", "There are three birds on the wire.",
]


def train_tokenizer(vocab_size=440):
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_writer=buf, model_type="bpe",
        vocab_size=vocab_size, byte_fallback=True, normalization_rule_name="identity",
        add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return buf.getvalue()


def tokenizer_kv(sp):
    toks, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        toks.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        if sp.is_unknown(i):
            t = 2
        elif sp.is_control(i):
            t = 3
        elif sp.is_byte(i):
            t = 6
        elif sp.is_unused(i):
            t = 5
        else:
            t = 1
        types.append(t)
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": G.Val(G.T_ARR, toks, G.T_STR),
        "tokenizer.ggml.scores": G.Val(G.T_ARR, scores, G.T_F32),
        "tokenizer.ggml.token_type": G.Val(G.T_ARR, types, G.T_I32),
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": False,
        "tokenizer.ggml.add_space_prefix": True,
    }


def llava_ids(sp, template, question, answer, n_image, raw=None):
    """LLaVA's tokenizer_image_token: split the prompt at <image>, tokenize the chunks
    separately (each gets its own dummy prefix), BOS once, image positions as -1.
    vicuna_v1's `</s>` separator is the EOS token (HF tokenizers parse it as special).
    Labels: `text` for the answer's tokens, `image`, `prompt` for the rest (BOS, EOS,
    system prompt, roles, question, plain's trailing "\n"); for a raw prompt every
    text token is `text`. Returns ids, labels."""
    ids, mod = [1], ["prompt"]
    if raw is not None:
        pre, post = raw.split("<image>")
        a = sp.encode(pre) if pre else []
        b = sp.encode(post) if post else []
        ids += a + [-1] * n_image + b
        mod += ["text"] * len(a) + ["image"] * n_image + ["text"] * len(b)
        return ids, mod
    if template == "llava-v1":
        pre = SYSTEM + " USER: "
        post_q = "\n" + question + " ASSISTANT:"
        a = sp.encode(pre)
        ids += a + [-1] * n_image
        mod += ["prompt"] * len(a) + ["image"] * n_image
        full = sp.encode(post_q + " " + answer)
        head = sp.encode(post_q)
        if full[:len(head)] != head:
            raise SystemExit("answer boundary not a token boundary")
        ids += full + [2]
        mod += ["prompt"] * len(head) + ["text"] * (len(full) - len(head)) + ["prompt"]
        return ids, mod
    if template == "plain":
        ids += [-1] * n_image
        mod += ["image"] * n_image
        body, ans = sp.encode(answer + "\n"), sp.encode(answer)
        if body[:len(ans)] != ans:
            raise SystemExit("answer boundary not a token boundary")
        return ids + body, mod + ["text"] * len(ans) + ["prompt"] * (len(body) - len(ans))
    raise ValueError(template)


# ---------------------------------------------------------------------------------------
# Image preprocessing: LLaVA-1.5 (pad to square with the mean colour, PIL BICUBIC resize,
# /255, normalise, channel-planar).
def preprocess_pad(img, size, mean=CLIP_MEAN, std=CLIP_STD):
    img = img.convert("RGB")
    w, h = img.size
    bg = tuple(int(x * 255) for x in mean)
    if w != h:
        s = max(w, h)
        sq = Image.new("RGB", (s, s), bg)
        sq.paste(img, ((s - w) // 2, (s - h) // 2))
        img = sq
    img = img.resize((size, size), Image.BICUBIC)
    a = np.asarray(img, dtype=np.float64) / 255.0
    a = (a - np.array(mean)) / np.array(std)
    return a.transpose(2, 0, 1).copy()


def preprocess_crop(img, size, mean=CLIP_MEAN, std=CLIP_STD):
    """HF CLIPImageProcessor: shortest edge to `size` (BICUBIC), centre crop."""
    img = img.convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    img = img.resize((nw, nh), Image.BICUBIC)
    top, left = int((nh - size) / 2), int((nw - size) / 2)
    img = img.crop((left, top, left + size, top + size))
    a = np.asarray(img, dtype=np.float64) / 255.0
    a = (a - np.array(mean)) / np.array(std)
    return a.transpose(2, 0, 1).copy()


def synth_image(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = (128 + 100 * np.sin(x / 5.0 + seed)) + rng.normal(0, 20, (h, w))
    g = (128 + 100 * np.cos(y / 4.0)) + rng.normal(0, 20, (h, w))
    b = ((x * 7 + y * 3) % 256) * 1.0
    a = np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB")


# ---------------------------------------------------------------------------------------
# Model generator.
def gen_pair(outdir, name, cfg, sp, seed):
    rng = np.random.default_rng(seed)
    mat, vec = weight_makers(rng)
    wt = cfg["wtype"]

    E, H, HKV, FF, L = cfg["n_embd"], cfg["n_head"], cfg["n_head_kv"], cfg["n_ff"], cfg["n_layer"]
    hd = E // H
    V = sp.get_piece_size()
    F32 = G.GGML_F32
    md = {"general.architecture": "llama", "general.name": "vlmn-tiny-" + name,
          "llama.context_length": 128, "llama.embedding_length": E, "llama.block_count": L,
          "llama.feed_forward_length": FF, "llama.rope.dimension_count": hd,
          "llama.attention.head_count": H, "llama.attention.head_count_kv": HKV,
          "llama.attention.layer_norm_rms_epsilon": 1e-5}
    if cfg.get("rope_base") is not None:
        md["llama.rope.freq_base"] = float(cfg["rope_base"])
    md.update(tokenizer_kv(sp))
    tensors = decoder_tensors(rng, mat, vec, cfg, V,
                              lambda l: (mat(H * hd, E), mat(HKV * hd, E), lambda: mat(HKV * hd, E)))
    text_path = os.path.join(outdir, name + ".text.gguf")
    G.write_gguf(text_path, md, tensors)

    # vision projector (clip)
    VW, VH, VFF, VL = cfg["v_width"], cfg["v_head"], cfg["v_ff"], cfg["v_blocks"]
    S, P = cfg["image_size"], 14
    NP = (S // P) ** 2 + 1
    vwt = cfg.get("v_wtype", wt)
    mdv = {"general.architecture": "clip", "general.name": "vlmn-tiny-mmproj-" + name,
           "clip.has_text_encoder": False, "clip.has_vision_encoder": True,
           "clip.has_llava_projector": True, "clip.projector_type": "mlp",
           "clip.use_gelu": bool(cfg.get("use_gelu", False)),
           "clip.vision.image_size": S, "clip.vision.patch_size": P,
           "clip.vision.embedding_length": VW, "clip.vision.feed_forward_length": VFF,
           "clip.vision.projection_dim": E, "clip.vision.attention.head_count": VH,
           "clip.vision.attention.layer_norm_epsilon": 1e-5, "clip.vision.block_count": VL,
           "clip.vision.image_mean": G.Val(G.T_ARR, CLIP_MEAN, G.T_F32),
           "clip.vision.image_std": G.Val(G.T_ARR, CLIP_STD, G.T_F32)}
    if cfg.get("feature_layer") is not None:
        mdv["clip.vision.feature_layer"] = G.Val(G.T_I32, cfg["feature_layer"])
    vt = [("v.class_embd", vec(VW, 0.0, 1.0), F32),
          # the converter always stores the conv kernel (4-D) in f16
          ("v.patch_embd.weight", (rng.standard_normal((VW, 3, P, P)) / math.sqrt(3 * P * P)).astype(np.float32), G.GGML_F16),
          ("v.position_embd.weight", (rng.standard_normal((NP, VW)) * 0.5).astype(np.float32), cfg.get("v_pos_type", F32)),
          ("v.pre_ln.weight", vec(VW, 1.0), F32), ("v.pre_ln.bias", vec(VW), F32)]
    legacy = cfg.get("legacy", True)
    for l in range(VL):
        p = f"v.blk.{l}."
        fc1w, fc1b = mat(VFF, VW, 2.0), vec(VFF)
        fc2w, fc2b = mat(VW, VFF), vec(VW)
        vt += [(p + "attn_q.weight", mat(VW, VW), vwt), (p + "attn_q.bias", vec(VW), F32),
               (p + "attn_k.weight", mat(VW, VW), vwt), (p + "attn_k.bias", vec(VW), F32),
               (p + "attn_v.weight", mat(VW, VW), vwt), (p + "attn_v.bias", vec(VW), F32),
               (p + "attn_out.weight", mat(VW, VW), vwt), (p + "attn_out.bias", vec(VW), F32),
               (p + "ln1.weight", vec(VW, 1.0), F32), (p + "ln1.bias", vec(VW), F32),
               (p + "ln2.weight", vec(VW, 1.0), F32), (p + "ln2.bias", vec(VW), F32)]
        if legacy:   # legacy llava converter: fc1 under ffn_down, fc2 under ffn_up
            vt += [(p + "ffn_down.weight", fc1w, vwt), (p + "ffn_down.bias", fc1b, F32),
                   (p + "ffn_up.weight", fc2w, vwt), (p + "ffn_up.bias", fc2b, F32)]
        else:
            vt += [(p + "ffn_up.weight", fc1w, vwt), (p + "ffn_up.bias", fc1b, F32),
                   (p + "ffn_down.weight", fc2w, vwt), (p + "ffn_down.bias", fc2b, F32)]
    vt += [("mm.0.weight", mat(E, VW, 2.0), vwt), ("mm.0.bias", vec(E), F32),
           ("mm.2.weight", mat(E, E), vwt), ("mm.2.bias", vec(E), F32)]
    mm_path = os.path.join(outdir, name + ".mmproj.gguf")
    G.write_gguf(mm_path, mdv, vt)
    return text_path, mm_path


# ---------------------------------------------------------------------------------------
# Reference forward, float64, written from HF transformers' modeling code semantics.
def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def clip_vision(mm, pixels):
    """CLIPVisionModel (CLIPVisionEmbeddings: CLS first, position ids 0..N; pre_layrnorm;
    CLIPEncoderLayer x n; no post_layernorm) + LlavaMultiModalProjector."""
    md = mm.metadata
    P = md["clip.vision.patch_size"]
    VH = md["clip.vision.attention.head_count"]
    eps = float(np.float32(md["clip.vision.attention.layer_norm_epsilon"]))
    n_stored = md["clip.vision.block_count"]
    n_run = n_stored
    if "clip.vision.feature_layer" in md:      # HF hidden_states index (0 = embeddings)
        fl = md["clip.vision.feature_layer"]
        n_run = fl if fl >= 0 else n_stored + 1 + fl
    act_gelu = bool(md.get("clip.use_gelu", False))
    t = lambda n: T(mm.tensor(n))  # noqa: E731
    x = torch.nn.functional.conv2d(T(pixels)[None], t("v.patch_embd.weight"), stride=P)
    x = x.flatten(2).transpose(1, 2)[0]                      # [n_patches, width], row-major grid
    x = torch.cat([t("v.class_embd")[None], x], 0)           # CLS first
    x = x + t("v.position_embd.weight")[: x.shape[0]]
    x = layer_norm(x, t("v.pre_ln.weight"), t("v.pre_ln.bias"), eps)
    N, W = x.shape
    hd = W // VH
    for l in range(n_run):
        p = f"v.blk.{l}."
        r = x
        h = layer_norm(x, t(p + "ln1.weight"), t(p + "ln1.bias"), eps)
        q = (h @ t(p + "attn_q.weight").T + t(p + "attn_q.bias")) * hd ** -0.5
        k = h @ t(p + "attn_k.weight").T + t(p + "attn_k.bias")
        v = h @ t(p + "attn_v.weight").T + t(p + "attn_v.bias")
        q, k, v = (z.reshape(N, VH, hd).transpose(0, 1) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(1, 2), -1) @ v
        a = a.transpose(0, 1).reshape(N, W)
        x = r + a @ t(p + "attn_out.weight").T + t(p + "attn_out.bias")
        r = x
        h = layer_norm(x, t(p + "ln2.weight"), t(p + "ln2.bias"), eps)
        up, down = t(p + "ffn_up.weight"), t(p + "ffn_down.weight")
        if tuple(down.shape) == (md["clip.vision.feed_forward_length"], W):  # legacy: fc1 in ffn_down
            fc1, fc1b, fc2, fc2b = down, t(p + "ffn_down.bias"), up, t(p + "ffn_up.bias")
        else:
            fc1, fc1b, fc2, fc2b = up, t(p + "ffn_up.bias"), down, t(p + "ffn_down.bias")
        h = h @ fc1.T + fc1b
        h = torch.nn.functional.gelu(h) if act_gelu else h * torch.sigmoid(1.702 * h)
        x = r + h @ fc2.T + fc2b
    x = x[1:]                                                # drop CLS
    x = x @ t("mm.0.weight").T + t("mm.0.bias")
    x = torch.nn.functional.gelu(x)                          # exact erf GELU
    return x @ t("mm.2.weight").T + t("mm.2.bias")


def llama_forward(tm, ids, img_emb, mask=None, n_logits=2):
    """LlamaModel with HF semantics (ref_common.decoder_forward): rotate_half RoPE on
    un-permuted Q/K, repeat_kv, causal mask, RMSNorm, SwiGLU. Returns (silu[L,T,FF],
    swiglu[L,T,FF], logits)."""
    md = tm.metadata
    H = md["llama.attention.head_count"]
    HKV = md["llama.attention.head_count_kv"]
    hd = md["llama.embedding_length"] // H

    def qkv(t, p, h, Tn):
        wq = unpermute_gguf_to_hf(t(p + "attn_q.weight"), H)
        wk = unpermute_gguf_to_hf(t(p + "attn_k.weight"), HKV)
        q = (h @ wq.T).reshape(Tn, H, hd).transpose(0, 1)
        k = (h @ wk.T).reshape(Tn, HKV, hd).transpose(0, 1)
        v = (h @ t(p + "attn_v.weight").T).reshape(Tn, HKV, hd).transpose(0, 1)
        return q, k, v

    return decoder_forward(tm, "llama", ids, img_emb, qkv, mask, n_logits)


def reference(text_path, mm_path, ids, pixels, mask=None):
    tm, mm = G.GGUFReader(text_path), G.GGUFReader(mm_path)
    img = clip_vision(mm, pixels) if any(i < 0 for i in ids) else None
    return llama_forward(tm, ids, img, mask)


# ---------------------------------------------------------------------------------------
CONFIGS = {
    # F32: GQA 3->1, head_dim 16, n_ff 45 (not a multiple of 32), tied output, quick_gelu.
    "f32": dict(wtype=G.GGML_F32, n_embd=48, n_head=3, n_head_kv=1, n_ff=45, n_layer=3,
                tie_output=True, rope_base=10000.0, v_width=40, v_head=4, v_ff=72, v_blocks=3,
                image_size=42),
    # F16: no GQA (4 kv heads), freq_base absent (default 10000), new fc naming,
    # feature_layer -2 (4 stored blocks, 3 run), erf GELU in the tower.
    "f16": dict(wtype=G.GGML_F16, n_embd=64, n_head=4, n_head_kv=4, n_ff=45, n_layer=3,
                tie_output=True, rope_base=None, v_width=32, v_head=2, v_ff=72, v_blocks=4,
                image_size=42, legacy=False, feature_layer=-2, use_gelu=True,
                v_pos_type=G.GGML_F16),
    # BF16: GQA 5->1, head_dim 16, n_ff 45, tied output, rope base 500000.
    "bf16": dict(wtype=G.GGML_BF16, n_embd=80, n_head=5, n_head_kv=1, n_ff=45, n_layer=3,
                 tie_output=True, rope_base=500000.0, v_width=40, v_head=4, v_ff=72, v_blocks=3, image_size=42),
    # Q8_0: every K a multiple of 32: n_embd 64 (4 heads of 16, GQA 4->2), n_ff 96,
    # n_ff 64, vision width 32 (2 heads), ff 64; norms/biases f32, conv kernel f16;
    # untied output.
    "q8_0": dict(wtype=G.GGML_Q8_0, n_embd=64, n_head=4, n_head_kv=2, n_ff=64, n_layer=3,
                 rope_base=10000.0, v_width=32, v_head=2, v_ff=64, v_blocks=3,
                 image_size=42),
}
MASK = {0: [0, 7, 44], 1: [3, 4, 5, 30]}          # neurons zeroed before down_proj
PROMPTS = {
    "v1": ("llava-v1", "What is in the image?", "A red square on a blue background."),
    "plain": ("plain", None, "Two cats sleep on a sofa."),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "engine")
    os.makedirs(out, exist_ok=True)
    spm_bytes = train_tokenizer()
    with open(os.path.join(out, "tiny.spm.model"), "wb") as f:
        f.write(spm_bytes)
    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)

    # engine inputs: two images of different aspect ratios, LLaVA pad preprocessing
    imgs = {"wide": synth_image(60, 40, 1), "tall": synth_image(30, 50, 2)}
    for k, im in imgs.items():
        im.save(os.path.join(out, f"img_{k}.png"))
    # a baseline JPEG (4:2:0) for the probe test: decoded here by PIL (libjpeg-turbo)
    synth_image(50, 70, 3).save(os.path.join(out, "img_tall.jpg"), quality=90)
    pix = {k: preprocess_pad(Image.open(os.path.join(out, f"img_{k}.png")), 42) for k in imgs}
    for k, a in pix.items():
        save(os.path.join(out, f"pixels_{k}.npy"), a)
    # the engine is fed exactly the float32 pixels stored above
    pix32 = {k: np.load(os.path.join(out, f"pixels_{k}.npy")).astype(np.float64) for k in pix}

    ids = {}
    for k, (tpl, q, a) in PROMPTS.items():
        ids[k], _ = llava_ids(sp, tpl, q, a, 9)
        save(os.path.join(out, f"ids_{k}.npy"), ids[k], np.int32)
    manifest = {"mask": {str(k): v for k, v in MASK.items()}, "models": {}}
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        tp, mp = gen_pair(out, name, cfg, sp, 1000 + i)
        # (to keep fixtures small, each model stores a subset of the golden blocks)
        # v1 + wide image, no mask: silu_gate and logits
        s, w, lg = reference(tp, mp, ids["v1"], pix32["wide"])
        save(os.path.join(out, f"{name}_v1_silu.npy"), s)
        save(os.path.join(out, f"{name}_v1_logits.npy"), lg)
        # plain template + tall image
        s, w, _ = reference(tp, mp, ids["plain"], pix32["tall"])
        save(os.path.join(out, f"{name}_plain_silu.npy"), s)
        save(os.path.join(out, f"{name}_plain_swiglu.npy"), w)
        # with the neuron mask: v1 + wide for f16 (silu_gate) and bf16 (swiglu),
        # plain + tall for f32 and q8_0 (swiglu)
        if name in ("f16", "bf16"):
            s, w, _ = reference(tp, mp, ids["v1"], pix32["wide"], MASK)
            save(os.path.join(out, f"{name}_v1mask_{'silu' if name == 'f16' else 'swiglu'}.npy"),
                 s if name == "f16" else w)
        else:
            s, w, _ = reference(tp, mp, ids["plain"], pix32["tall"], MASK)
            save(os.path.join(out, f"{name}_plainmask_swiglu.npy"), w)
        manifest["models"][name] = {"text": os.path.basename(tp), "mmproj": os.path.basename(mp)}
    # `vlmn probe` end to end: the PNG files, LLaVA's prompt building and preprocessing
    # done here with sentencepiece + PIL; goldens for the selected layers only.
    probes = [
        dict(name="probe_v1", model="f32", image="img_wide.png", mode="pad", template="llava-v1",
             question="What is in the image?", answer="A red square on a blue background.",
             hook="silu", layers=[0, 1, 2]),
        dict(name="probe_plain", model="bf16", image="img_tall.png", mode="pad", template="plain",
             answer="Two cats sleep on a sofa.", hook="swiglu", layers=[0, 2]),
        dict(name="probe_raw", model="f16", image="img_wide.png", mode="crop",
             raw="USER: <image>\nDescribe the image. ASSISTANT:", hook="silu", layers=[1]),
        dict(name="probe_jpeg", model="q8_0", image="img_tall.jpg", mode="pad", template="plain",
             answer="A dog runs in the park.", hook="silu", layers=[2]),
    ]
    for pr in probes:
        if pr["name"] == "probe_v1":   # same model, image, prompt and hook as f32_v1_silu.npy
            pr["golden"] = "f32_v1_silu.npy"
        tp = os.path.join(out, pr["model"] + ".text.gguf")
        mp = os.path.join(out, pr["model"] + ".mmproj.gguf")
        im = Image.open(os.path.join(out, pr["image"]))
        px = preprocess_pad(im, 42) if pr["mode"] == "pad" else preprocess_crop(im, 42)
        pids, pmod = llava_ids(sp, pr.get("template"), pr.get("question"), pr.get("answer"), 9, pr.get("raw"))
        s, w, _ = reference(tp, mp, pids, px)
        acts = (s if pr["hook"] == "silu" else w)[pr["layers"]]
        if "golden" in pr:
            # (it differs only by the f32 rounding of the pixels)
            g = np.load(os.path.join(out, pr["golden"])).astype(np.float64)
            assert np.linalg.norm(g - acts.numpy()) <= 1e-6 * np.linalg.norm(g)
        else:
            save(os.path.join(out, pr["name"] + ".npy"), acts)
        toks = [{"pos": i, "id": t, "piece": "<image>" if t < 0 else sp.id_to_piece(t), "modality": md}
                for i, (t, md) in enumerate(zip(pids, pmod))]
        with open(os.path.join(out, pr["name"] + ".tokens.json"), "w") as f:
            json.dump(toks, f, ensure_ascii=False)
    manifest["probes"] = probes
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


# ---------------------------------------------------------------------------------------
# Greedy decoding (HF generate(do_sample=False) semantics: re-run the whole prefix, take
# the first argmax of the last position's logits, stop at EOS or max_new tokens). The
# top-2 margin of every step is recorded: a prompt is kept only if every step's margin
# is at least GREEDY_MIN_MARGIN, far above the engine's logit error on these models.
GREEDY_QUESTIONS = [
    "What is in the image?", "Describe the image.", "What colour is the car?",
    "Is there a person in the picture?", "Describe the picture in detail.",
    "What is the dog doing?", "How many birds are there?", "Where is the house?",
]
GREEDY_MODELS = ["f32", "bf16", "q8_0"]
GREEDY_MAX_NEW = 12
GREEDY_MIN_MARGIN = 0.05


def gen_prompt_ids(sp, question, n_image):
    """llava-v1 generation prompt: SYSTEM " USER: <image>\n" question " ASSISTANT:"."""
    return [1] + sp.encode(SYSTEM + " USER: ") + [-1] * n_image + sp.encode("\n" + question + " ASSISTANT:")


def greedy(text_path, mm_path, ids, pixels, max_new, eos=2):
    tm, mm = G.GGUFReader(text_path), G.GGUFReader(mm_path)
    out, margins, stop = greedy_decode(llama_forward, tm, ids, clip_vision(mm, pixels), {eos}, max_new)
    return out, margins, stop is not None


def greedy_main(out):
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "tiny.spm.model"))
    pix = {k: np.load(os.path.join(out, f"pixels_{k}.npy")).astype(np.float64) for k in ("wide", "tall")}
    cases, rejected = [], 0
    for name in GREEDY_MODELS:
        tp = os.path.join(out, name + ".text.gguf")
        mp = os.path.join(out, name + ".mmproj.gguf")
        for q in GREEDY_QUESTIONS:
            for im in ("wide", "tall"):
                ids = gen_prompt_ids(sp, q, 9)
                toks, margins, stop = greedy(tp, mp, ids, pix[im], GREEDY_MAX_NEW)
                if min(margins) < GREEDY_MIN_MARGIN:
                    rejected += 1
                    continue
                cases.append(dict(model=name, pixels=f"pixels_{im}.npy", question=q, prompt=ids,
                                  tokens=toks, eos=stop, min_margin=round(min(margins), 6)))
    doc = dict(max_new=GREEDY_MAX_NEW, min_margin=GREEDY_MIN_MARGIN, template="llava-v1",
               rejected=rejected, cases=cases)
    with open(os.path.join(out, "greedy.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(f"{len(cases)} greedy cases kept, {rejected} rejected for a top-2 margin < {GREEDY_MIN_MARGIN}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--greedy":
        here = os.path.dirname(os.path.abspath(__file__))
        greedy_main(sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "data", "engine"))
    else:
        main()
