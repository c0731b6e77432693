#!/usr/bin/python3
"""Tiny InternVL-2.5 fixtures and an independent float64 reference forward pass.

Writes tests/data/internvl/: tiny GGUF pairs in the layout llama.cpp's converter writes
for InternVL 2.5 (text `internlm2`: the HF packed `wqkv` split into attn_q/attn_k/attn_v
with Q/K permuted as for llama; mmproj `clip` with projector_type `internvl`: InternViT's
packed qkv split, ls1/ls2, mlp1 as mm.model.mlp.{0,1,3}), pixel tiles (InternVL's
dynamic_preprocess at a tiny tile size), token ids (<img> + IMG_CONTEXT positions +
</img>) and the golden FFN activations of every layer, computed here in float64 with
the semantics of the HF remote code (modeling_intern_vit.py: InternVisionEmbeddings,
InternVisionEncoderLayer; modeling_internvl_chat.py: extract_feature, pixel_shuffle v2,
mlp1; modeling_internlm2.py: InternLM2Attention with the packed wqkv rearranged as HF
does, rotate_half RoPE, repeat_kv, InternLM2MLP w2(silu(w1 x) * w3 x)). The GGUF files
are read back through gguf_py, dequantised there, Q/K un-permuted and wqkv / qkv
re-packed into the HF layout before the forward. Nothing here uses vlmn. Run:
    /usr/bin/python3 tests/reference/internvl_ref.py [OUTDIR]
Greedy continuations of the committed fixture models (OUTDIR/greedy.json; HF's
GenerationMixin greedy search as InternVLChatModel.chat() runs it: the whole prefix
re-run per token here, stop at <|im_end|> (chat()'s eos_token_id, template.sep) or the
tokenizer's </s>):
    /usr/bin/python3 tests/reference/internvl_ref.py --greedy [OUTDIR]
"""
import math
import os
import sys

import numpy as np
import torch
import sentencepiece as spm
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_py as G  # noqa: E402
from llava_ref import train_tokenizer, tokenizer_kv, synth_image  # noqa: E402
from ref_common import (T, save, weight_makers, unpermute_gguf_to_hf as unpermute,  # noqa: E402
                        decoder_tensors, decoder_forward, greedy_decode)

F = torch.nn.functional

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# (the real default system prompt is Chinese; the tiny fixtures use a short one)
SYSTEM = "You are a helpful assistant."
SPECIALS = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"]
TILE = 84          # tiny tile size: patch 14 -> 6 x 6 grid -> 3 x 3 = 9 tokens per tile
PATCH = 14


# ---------------------------------------------------------------------------------------
# InternVL's preprocessing (model card: build_transform + dynamic_preprocess).
def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_diff, best = float("inf"), (1, 1)
    area = width * height
    for r in target_ratios:
        diff = abs(aspect_ratio - r[0] / r[1])
        if diff < best_diff:
            best_diff, best = diff, r
        elif diff == best_diff and area > 0.5 * image_size * image_size * r[0] * r[1]:
            best = r
    return best


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=True):
    w, h = image.size
    ratios = sorted({(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1)
                     for j in range(1, n + 1) if min_num <= i * j <= max_num}, key=lambda r: r[0] * r[1])
    r = find_closest_aspect_ratio(w / h, ratios, w, h, image_size)
    tw, th = image_size * r[0], image_size * r[1]
    resized = image.resize((tw, th), Image.BICUBIC)
    tiles = []
    for i in range(r[0] * r[1]):
        x, y = (i % r[0]) * image_size, (i // r[0]) * image_size
        tiles.append(resized.crop((x, y, x + image_size, y + image_size)))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size), Image.BICUBIC))
    return tiles, r


def to_tensor_normalize(img):
    """torchvision ToTensor + Normalize(IMAGENET), in float32 as torchvision computes."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    a = (a - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return a.transpose(2, 0, 1).astype(np.float32)


def load_image(img, max_num):
    tiles, r = dynamic_preprocess(img.convert("RGB"), max_num=max_num, image_size=TILE)
    # T.Resize((TILE, TILE)) is the identity on tiles already of that size
    return np.stack([to_tensor_normalize(t) for t in tiles]), r


# ---------------------------------------------------------------------------------------
# Model generator: HF-layout random weights, converted as llama.cpp's converter does.
def gen_pair(outdir, name, cfg, sp_kv, n_vocab, seed):
    rng = np.random.default_rng(seed)
    mat, vec = weight_makers(rng)
    wt = cfg["wtype"]
    F32 = G.GGML_F32

    E, H, HKV, FF, L = cfg["n_embd"], cfg["n_head"], cfg["n_head_kv"], cfg["n_ff"], cfg["n_layer"]
    hd, grp = E // H, H // HKV
    md = {"general.architecture": "internlm2", "general.name": "vlmn-tiny-internvl-" + name,
          "internlm2.context_length": 512, "internlm2.embedding_length": E,
          "internlm2.block_count": L, "internlm2.feed_forward_length": FF,
          "internlm2.rope.dimension_count": hd, "internlm2.attention.head_count": H,
          "internlm2.attention.head_count_kv": HKV,
          "internlm2.attention.layer_norm_rms_epsilon": 1e-5}
    if cfg.get("rope_base") is not None:
        md["internlm2.rope.freq_base"] = float(cfg["rope_base"])
    md.update(sp_kv)

    def attn(l):
        # HF InternLM2Attention.wqkv: rows grouped per kv head as (grp q heads, k, v)
        qkv = mat(HKV * (grp + 2) * hd, E).reshape(HKV, grp + 2, hd, E)
        return (qkv[:, :grp].reshape(-1, E), qkv[:, -2].reshape(-1, E),
                np.ascontiguousarray(qkv[:, -1].reshape(-1, E)))

    tensors = decoder_tensors(rng, mat, vec, cfg, n_vocab, attn)
    text_path = os.path.join(outdir, name + ".text.gguf")
    G.write_gguf(text_path, md, tensors)

    VW, VH, VFF, VL = cfg["v_width"], cfg["v_head"], cfg["v_ff"], cfg["v_blocks"]
    NP = (TILE // PATCH) ** 2 + 1
    vwt = cfg.get("v_wtype", wt)
    mdv = {"general.architecture": "clip", "general.name": "vlmn-tiny-internvl-mmproj-" + name,
           "clip.has_text_encoder": False, "clip.has_vision_encoder": True,
           "clip.projector_type": "internvl", "clip.use_gelu": True,
           "clip.vision.image_size": TILE, "clip.vision.patch_size": PATCH,
           "clip.vision.embedding_length": VW, "clip.vision.feed_forward_length": VFF,
           "clip.vision.projection_dim": E, "clip.vision.attention.head_count": VH,
           "clip.vision.attention.layer_norm_epsilon": 1e-6, "clip.vision.block_count": VL,
           "clip.vision.projector.scale_factor": G.Val(G.T_U32, 2),
           "clip.vision.image_mean": G.Val(G.T_ARR, IMAGENET_MEAN, G.T_F32),
           "clip.vision.image_std": G.Val(G.T_ARR, IMAGENET_STD, G.T_F32)}
    vt = [("v.class_embd", vec(VW, 0.0, 1.0), F32),
          ("v.patch_embd.weight", (rng.standard_normal((VW, 3, PATCH, PATCH)) / math.sqrt(3 * PATCH * PATCH)).astype(np.float32), G.GGML_F16),
          ("v.patch_embd.bias", vec(VW), F32),
          ("v.position_embd.weight", (rng.standard_normal((NP, VW)) * 0.5).astype(np.float32), F32)]
    for l in range(VL):
        p = f"v.blk.{l}."
        qkv_w, qkv_b = mat(3 * VW, VW), vec(3 * VW)   # HF attn.qkv, split by the converter
        vt += [(p + "attn_q.weight", qkv_w[:VW], vwt), (p + "attn_q.bias", qkv_b[:VW], F32),
               (p + "attn_k.weight", qkv_w[VW:2 * VW], vwt), (p + "attn_k.bias", qkv_b[VW:2 * VW], F32),
               (p + "attn_v.weight", qkv_w[2 * VW:], vwt), (p + "attn_v.bias", qkv_b[2 * VW:], F32),
               (p + "attn_out.weight", mat(VW, VW), vwt), (p + "attn_out.bias", vec(VW), F32),
               (p + "ln1.weight", vec(VW, 1.0), F32), (p + "ln1.bias", vec(VW), F32),
               (p + "ln2.weight", vec(VW, 1.0), F32), (p + "ln2.bias", vec(VW), F32),
               (p + "ls1.weight", vec(VW, 0.5, 0.2), F32), (p + "ls2.weight", vec(VW, 0.5, 0.2), F32),
               (p + "ffn_up.weight", mat(VFF, VW, 2.0), vwt), (p + "ffn_up.bias", vec(VFF), F32),
               (p + "ffn_down.weight", mat(VW, VFF), vwt), (p + "ffn_down.bias", vec(VW), F32)]
    C4 = 4 * VW
    vt += [("mm.model.mlp.0.weight", vec(C4, 1.0), F32), ("mm.model.mlp.0.bias", vec(C4), F32),
           ("mm.model.mlp.1.weight", mat(E, C4, 2.0), vwt), ("mm.model.mlp.1.bias", vec(E), F32),
           ("mm.model.mlp.3.weight", mat(E, E), vwt), ("mm.model.mlp.3.bias", vec(E), F32)]
    mm_path = os.path.join(outdir, name + ".mmproj.gguf")
    G.write_gguf(mm_path, mdv, vt)
    return text_path, mm_path


# ---------------------------------------------------------------------------------------
# Reference forward, float64, HF remote-code semantics.
def intern_vit(mm, pixels):
    """InternVisionModel.forward (300M: LayerNorm, qkv_bias, no qk norm) then
    InternVLChatModel.extract_feature with select_layer = -1 (last_hidden_state),
    pixel_shuffle(0.5, ps_version v2), mlp1."""
    md = mm.metadata
    P = md["clip.vision.patch_size"]
    VH = md["clip.vision.attention.head_count"]
    eps = float(np.float32(md["clip.vision.attention.layer_norm_epsilon"]))
    t = lambda n: T(mm.tensor(n))  # noqa: E731
    px = T(pixels)                                                    # [B, 3, S, S]
    B = px.shape[0]
    x = F.conv2d(px, t("v.patch_embd.weight"), t("v.patch_embd.bias"), stride=P)
    g = x.shape[-1]
    x = x.flatten(2).transpose(1, 2)                                  # [B, g*g, W]
    W = x.shape[-1]
    cls = t("v.class_embd").reshape(1, 1, W).expand(B, 1, W)
    x = torch.cat([cls, x], 1)
    pos = t("v.position_embd.weight")[None]                           # [1, 1+N, W]
    n0 = int(round(math.sqrt(pos.shape[1] - 1)))
    pp = pos[:, 1:].reshape(1, n0, n0, W).permute(0, 3, 1, 2)         # _get_pos_embed
    pp = F.interpolate(pp, size=(g, g), mode="bicubic", align_corners=False)
    pp = pp.reshape(1, W, g * g).permute(0, 2, 1)
    x = x + torch.cat([pos[:, :1], pp], 1)
    hd = W // VH
    N = x.shape[1]
    for l in range(md["clip.vision.block_count"]):
        p = f"v.blk.{l}."
        h = F.layer_norm(x, (W,), t(p + "ln1.weight"), t(p + "ln1.bias"), eps)
        qkv_w = torch.cat([t(p + "attn_q.weight"), t(p + "attn_k.weight"), t(p + "attn_v.weight")], 0)
        qkv_b = torch.cat([t(p + "attn_q.bias"), t(p + "attn_k.bias"), t(p + "attn_v.bias")], 0)
        qkv = (h @ qkv_w.T + qkv_b).reshape(B, N, 3, VH, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = torch.softmax((q * hd ** -0.5) @ k.transpose(-2, -1), -1) @ v
        a = a.transpose(1, 2).reshape(B, N, W)
        a = a @ t(p + "attn_out.weight").T + t(p + "attn_out.bias")
        x = x + a * t(p + "ls1.weight")
        h = F.layer_norm(x, (W,), t(p + "ln2.weight"), t(p + "ln2.bias"), eps)
        h = F.gelu(h @ t(p + "ffn_up.weight").T + t(p + "ffn_up.bias"))
        h = h @ t(p + "ffn_down.weight").T + t(p + "ffn_down.bias")
        x = x + h * t(p + "ls2.weight")
    x = x[:, 1:, :]
    hw = int(x.shape[1] ** 0.5)
    x = x.reshape(B, hw, hw, -1)
    x = pixel_shuffle(x, 1.0 / md.get("clip.vision.projector.scale_factor", 2))
    x = x.reshape(B, -1, x.shape[-1])
    C4 = x.shape[-1]
    x = F.layer_norm(x, (C4,), t("mm.model.mlp.0.weight"), t("mm.model.mlp.0.bias"), 1e-5)
    x = F.gelu(x @ t("mm.model.mlp.1.weight").T + t("mm.model.mlp.1.bias"))
    x = x @ t("mm.model.mlp.3.weight").T + t("mm.model.mlp.3.bias")
    return x.reshape(-1, x.shape[-1])                                 # tiles one after another


def pixel_shuffle(x, scale_factor=0.5):
    n, w, h, c = x.size()
    x = x.reshape(n, w, int(h * scale_factor), int(c / scale_factor))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.reshape(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
    return x.permute(0, 2, 1, 3).contiguous()                         # ps_version v2


def internlm2_forward(tm, ids, img_emb, mask=None, n_logits=2):
    """InternLM2Model (ref_common.decoder_forward) with InternLM2Attention's packed wqkv
    re-packed from the converter's split, permuted attn_q/attn_k/attn_v and split as HF
    does; the MLP w2(silu(w1 x) * w3 x) is ffn_down(silu(ffn_gate) * ffn_up)."""
    md = tm.metadata
    E = md["internlm2.embedding_length"]
    H = md["internlm2.attention.head_count"]
    HKV = md["internlm2.attention.head_count_kv"]
    hd, grp = E // H, H // HKV

    def qkv(t, p, h, Tn):
        q = unpermute(t(p + "attn_q.weight"), H).reshape(HKV, grp, hd, E)
        k = unpermute(t(p + "attn_k.weight"), HKV).reshape(HKV, 1, hd, E)
        v = t(p + "attn_v.weight").reshape(HKV, 1, hd, E)
        wqkv = torch.cat([q, k, v], 1).reshape(-1, E)
        qkv = (h @ wqkv.T).reshape(Tn, HKV, grp + 2, hd)       # "b q (h gs d) -> b q h gs d"
        qs = qkv[:, :, :grp, :].reshape(Tn, H, hd).transpose(0, 1)
        ks = qkv[:, :, -2, :].transpose(0, 1)
        vs = qkv[:, :, -1, :].transpose(0, 1)
        return qs, ks, vs

    return decoder_forward(tm, "internlm2", ids, img_emb, qkv, mask, n_logits)


def reference(text_path, mm_path, ids, tiles, mask=None):
    tm, mm = G.GGUFReader(text_path), G.GGUFReader(mm_path)
    img = intern_vit(mm, tiles) if tiles is not None else None
    return internlm2_forward(tm, ids, img, mask)


# ---------------------------------------------------------------------------------------
def chat_ids(sp, sid, question, answer, n_tiles, n_per_tile):
    """The InternVL 2.5 chat template (internlm2-chat): system, user turn with
    <img> + IMG_CONTEXT * (256 per tile) + </img>\\n + question, assistant answer.
    Image positions are -1 (the IMG_CONTEXT embeddings are replaced by the vision
    features). Special tokens are single ids; each text chunk is encoded on its own."""
    ids = [1]

    def text(s):
        ids.extend(sp.encode(s) if s else [])

    ids.append(sid["<|im_start|>"])
    text("system\n" + SYSTEM)
    ids.append(sid["<|im_end|>"])
    text("\n")
    ids.append(sid["<|im_start|>"])
    text("user\n")
    ids.append(sid["<img>"])
    ids.extend([-1] * (n_tiles * n_per_tile))
    ids.append(sid["</img>"])
    text("\n" + question)
    ids.append(sid["<|im_end|>"])
    text("\n")
    ids.append(sid["<|im_start|>"])
    text("assistant\n" + answer)
    ids.append(sid["<|im_end|>"])
    return ids


INTERNVL_SYSTEM = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


def template_prompt(question, answer, n_tiles, n_per_tile):
    """conversation.py internlm2-chat (SeparatorStyle.MPT) as InternVLChatModel.chat()
    fills it: system_template.format(system_message) + sep, then role + message + sep
    per message, the open assistant turn as its role only; "<image>\n" + question, with
    "<image>" replaced by <img> + IMG_CONTEXT * (n_per_tile * n_tiles) + </img>. The
    answer (when given) closes the assistant turn with sep."""
    sep = "<|im_end|>"
    ret = "<|im_start|>system\n" + INTERNVL_SYSTEM + sep
    ret += "<|im_start|>user\n" + "<image>\n" + question + sep
    ret += "<|im_start|>assistant\n"
    a0 = len(ret)
    if answer:
        ret += answer
    a1 = len(ret)
    if answer:
        ret += sep
    ret = ret.replace("<image>", "<img>" + "<IMG_CONTEXT>" * (n_per_tile * n_tiles) + "</img>", 1)
    shift = len("<img>" + "<IMG_CONTEXT>" * (n_per_tile * n_tiles) + "</img>") - len("<image>")
    return ret, a0 + shift, a1 + shift


def hf_tokenize(sp, sid, text, a0, a1, bos=1):
    """HF tokenizer(text) over added tokens: split at every added token (earliest match,
    longest first), SentencePiece-encode each piece of text between them on its own;
    BOS first. IMG_CONTEXT ids become -1 (the positions the vision features replace).
    Labels: image / text (a token made from bytes of [a0, a1)) / prompt."""
    ids, mods = [bos], ["prompt"]
    specials = sorted(sid, key=len, reverse=True)
    pos = 0
    while pos < len(text):
        hits = [(text.find(s, pos), -len(s), s) for s in specials if text.find(s, pos) >= 0]
        at, _, tok = min(hits) if hits else (len(text), 0, None)
        if at > pos:
            chunk = text[pos:at]
            for piece in sp.encode(chunk, out_type="immutable_proto").pieces:
                b, e = pos + piece.begin, pos + piece.end
                ids.append(piece.id)
                mods.append("text" if a0 < a1 and b < a1 and e > a0 else "prompt")
        if tok is None:
            break
        if tok == "<IMG_CONTEXT>":
            ids.append(-1)
            mods.append("image")
        else:
            ids.append(sid[tok])
            mods.append("prompt")
        pos = at + len(tok)
    return ids, mods


CONFIGS = {
    # F32: GQA 8 -> 2 (InternLM2.5's 32/8 ratio), head_dim 8, n_ff 45, rope base 1e6.
    "f32": dict(wtype=G.GGML_F32, n_embd=64, n_head=8, n_head_kv=2, n_ff=45, n_layer=3,
                rope_base=1e6, v_width=40, v_head=4, v_ff=72, v_blocks=3),
    # F16: GQA 6 -> 2, tied output, rope base absent (10000), 2 vision blocks.
    "f16": dict(wtype=G.GGML_F16, n_embd=48, n_head=6, n_head_kv=2, n_ff=45, n_layer=3,
                tie_output=True, v_width=32, v_head=2, v_ff=72, v_blocks=2),
    # BF16: no GQA (5 kv heads), head_dim 16, rope base 1e6.
    "bf16": dict(wtype=G.GGML_BF16, n_embd=80, n_head=5, n_head_kv=5, n_ff=45, n_layer=3,
                 rope_base=1e6, v_width=40, v_head=4, v_ff=72, v_blocks=3),
    # Q8_0: every K a multiple of 32 (n_embd 64, n_ff 64, vision width 32, ff 64, mlp1 in 128).
    "q8_0": dict(wtype=G.GGML_Q8_0, n_embd=64, n_head=8, n_head_kv=2, n_ff=64, n_layer=3,
                 rope_base=1e6, v_width=32, v_head=2, v_ff=64, v_blocks=3),
}
MASK = {0: [0, 7, 44], 1: [3, 4, 5, 30]}
# images of four aspect ratios; max_num 4 keeps the fixtures small
IMAGES = {"wide": (170, 80, 11), "tall": (60, 190, 12), "square": (90, 90, 13), "portrait": (100, 140, 14)}
MAX_NUM = 4
QUESTION, ANSWER = "What is in the image?", "A red square on a blue background."


# image sizes whose 448-px / max 12 grid the C tiling must reproduce (ties included:
# squares pick the largest square grid whose half-area the image exceeds)
GRID_SIZES = [(448, 448), (300, 300), (1280, 1280), (900, 900), (1000, 500), (500, 1000),
              (800, 600), (600, 800), (1920, 1080), (1080, 1920), (10, 1000), (1000, 10),
              (640, 480), (1344, 448), (448, 1344), (2000, 1500), (333, 777), (777, 333),
              (1024, 768), (4000, 1000), (1000, 4000), (50, 40), (5000, 5000), (1600, 1000),
              (1250, 1000), (1, 1), (2, 1), (1, 2), (700, 300), (300, 700)]


def write_grids(out):
    import json
    rows = []
    for mx in (12, 6, 1):
        for w, h in GRID_SIZES:
            ratios = sorted({(i, j) for n in range(1, mx + 1) for i in range(1, n + 1)
                             for j in range(1, n + 1) if 1 <= i * j <= mx}, key=lambda r: r[0] * r[1])
            r = find_closest_aspect_ratio(w / h, ratios, w, h, 448)
            rows.append({"w": w, "h": h, "max_num": mx, "cols": r[0], "rows": r[1]})
    with open(os.path.join(out, "tile_grids.json"), "w") as f:
        json.dump(rows, f, indent=0)
        f.write("\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "internvl")
    os.makedirs(out, exist_ok=True)
    sp = spm.SentencePieceProcessor(model_proto=train_tokenizer())
    kv = tokenizer_kv(sp)
    toks = list(kv["tokenizer.ggml.tokens"].value) + SPECIALS
    scores = list(kv["tokenizer.ggml.scores"].value) + [0.0] * len(SPECIALS)
    types = list(kv["tokenizer.ggml.token_type"].value) + [3] * len(SPECIALS)
    kv["tokenizer.ggml.tokens"] = G.Val(G.T_ARR, toks, G.T_STR)
    kv["tokenizer.ggml.scores"] = G.Val(G.T_ARR, scores, G.T_F32)
    kv["tokenizer.ggml.token_type"] = G.Val(G.T_ARR, types, G.T_I32)
    sid = {s: sp.get_piece_size() + i for i, s in enumerate(SPECIALS)}
    n_vocab = len(toks)
    n_per_tile = ((TILE // PATCH) // 2) ** 2

    write_grids(out)
    import json
    prompts = []
    for q, a, nt in ((QUESTION, ANSWER, 3), ("Describe the image.", "Two cats sleep on a sofa.", 1),
                     ("What colour is the car?", None, 2)):
        text, a0, a1 = template_prompt(q, a, nt, ((TILE // PATCH) // 2) ** 2)
        ids, mods = hf_tokenize(sp, sid, text, a0, a1)
        prompts.append({"question": q, "answer": a, "n_tiles": nt, "ids": ids, "modality": mods})
    with open(os.path.join(out, "prompts.json"), "w") as f:
        json.dump(prompts, f, ensure_ascii=False)
        f.write("\n")
    tiles, grids = {}, {}
    for k, (w, h, seed) in IMAGES.items():
        im = synth_image(w, h, seed)
        im.save(os.path.join(out, f"img_{k}.png"))
        a, r = load_image(Image.open(os.path.join(out, f"img_{k}.png")), MAX_NUM)
        save(os.path.join(out, f"tiles_{k}.npy"), a)
        tiles[k] = np.load(os.path.join(out, f"tiles_{k}.npy")).astype(np.float64)
        grids[k] = r
        ids = chat_ids(sp, sid, QUESTION, ANSWER, a.shape[0], n_per_tile)
        save(os.path.join(out, f"ids_{k}.npy"), ids, np.int32)
        print(f"{k}: {w}x{h} -> grid {r[0]}x{r[1]}, {a.shape[0]} tiles, {len(ids)} positions")
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        tp, mp = gen_pair(out, name, cfg, kv, n_vocab, 2000 + i)
        for k in IMAGES:
            ids = np.load(os.path.join(out, f"ids_{k}.npy")).tolist()
            s, w, lg = reference(tp, mp, ids, tiles[k])
            save(os.path.join(out, f"{name}_{k}_silu.npy"), s)
            if k == "wide":
                save(os.path.join(out, f"{name}_{k}_swiglu.npy"), w)
                save(os.path.join(out, f"{name}_{k}_logits.npy"), lg)
        ids = np.load(os.path.join(out, "ids_tall.npy")).tolist()
        s, w, _ = reference(tp, mp, ids, tiles["tall"], MASK)
        save(os.path.join(out, f"{name}_tallmask_swiglu.npy"), w)
        print(name, "done")


# ---------------------------------------------------------------------------------------
# Greedy decoding (issue 12 on InternVL): prompts with images of four aspect ratios.
GREEDY_QUESTIONS = ["What is in the image?", "Describe the image.", "What colour is the car?",
                    "How many birds are there?", "Where is the house?", "What is the dog doing?"]
GREEDY_MODELS = ["f32", "f16", "bf16", "q8_0"]
GREEDY_MAX_NEW = 12
GREEDY_MIN_MARGIN = 0.05


def greedy(tm, mm, ids, tiles, stops, max_new):
    """Greedy search (ref_common.greedy_decode) on the image's tiles."""
    return greedy_decode(internlm2_forward, tm, ids, intern_vit(mm, tiles), stops, max_new)


def greedy_main(out):
    import json
    here = os.path.dirname(os.path.abspath(__file__))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(here, "..", "data", "engine", "tiny.spm.model"))
    n_per_tile = ((TILE // PATCH) // 2) ** 2
    tiles = {k: np.load(os.path.join(out, f"tiles_{k}.npy")).astype(np.float64) for k in IMAGES}
    cases, rejected = [], 0
    for name in GREEDY_MODELS:
        tm = G.GGUFReader(os.path.join(out, name + ".text.gguf"))
        mm = G.GGUFReader(os.path.join(out, name + ".mmproj.gguf"))
        toks = list(tm.metadata["tokenizer.ggml.tokens"])
        # the fixture vocabulary: the SentencePiece pieces, then the chat's added tokens
        assert toks[:sp.get_piece_size()] == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        sid = {t: toks.index(t) for t in SPECIALS}
        stops = {sid["<|im_end|>"], sp.eos_id()}
        for qi, q in enumerate(GREEDY_QUESTIONS):
            for k in IMAGES:
                text, a0, a1 = template_prompt(q, None, tiles[k].shape[0], n_per_tile)
                ids, _ = hf_tokenize(sp, sid, text, a0, a1)
                gen, margins, stop = greedy(tm, mm, ids, tiles[k], stops, GREEDY_MAX_NEW)
                if min(margins) < GREEDY_MIN_MARGIN:
                    rejected += 1
                    continue
                cases.append(dict(model=name, image=f"img_{k}.png", tiles=f"tiles_{k}.npy",
                                  n_tiles=int(tiles[k].shape[0]), question=q, prompt=ids, tokens=gen,
                                  eos=stop is not None, stop=stop, min_margin=round(min(margins), 6)))
        print(name, "done")
    doc = dict(max_new=GREEDY_MAX_NEW, min_margin=GREEDY_MIN_MARGIN, template="internvl", max_num=MAX_NUM,
               stops=["<|im_end|>", "</s>"], rejected=rejected, cases=cases)
    with open(os.path.join(out, "greedy.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{len(cases)} greedy cases kept, {rejected} rejected for a top-2 margin < {GREEDY_MIN_MARGIN}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--greedy":
        here = os.path.dirname(os.path.abspath(__file__))
        greedy_main(sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "data", "internvl"))
    else:
        main()
