#!/usr/bin/python3
"""Float64 reference for vlmn's CLIP towers (src/clip/clip.c), written from Hugging Face
CLIPModel semantics (CLIPVisionEmbeddings, pre-LN CLIPEncoderLayer with q scaled by
head_dim^-0.5, quick_gelu / gelu, causal text attention, EOT pooling at the first
eos_token_id, post-LN on CLS, visual / text projections) and MaskCLIP patch embeddings
(last block's value path out_proj(v_proj(LN1(x))) per patch, then post-LN and the visual
projection). Writes a tiny random CLIPModel folder (F32) and the same weights rounded to BF16 in
DIR-bf16, each with its expected outputs:

  /usr/bin/python3 tests/reference/clip_ref.py tests/data/clip/tiny

DIR/config.json, DIR/preprocessor_config.json, DIR/model.safetensors (F32),
DIR/expected.json {pixels, image_embed, patch_embed, texts: [{ids, embed}], maskclip_cos}."""
import json
import os
import struct
import sys

import torch

torch.manual_seed(1515)
D = torch.float64

V = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2, image_size=28,
         patch_size=7, hidden_act="quick_gelu", layer_norm_eps=1e-5, model_type="clip_vision_model")
T = dict(hidden_size=12, intermediate_size=20, num_hidden_layers=2, num_attention_heads=3, vocab_size=40,
         max_position_embeddings=10, hidden_act="gelu", layer_norm_eps=1e-5, eos_token_id=39, bos_token_id=38,
         model_type="clip_text_model")
PROJ = 8


def rnd(*shape, scale=0.3):
    # float32-representable values (the folder stores F32), computed in float64
    return (torch.randn(*shape, dtype=torch.float32) * scale).to(D)


def tower_weights(prefix, cfg, w):
    W, FF = cfg["hidden_size"], cfg["intermediate_size"]
    for l in range(cfg["num_hidden_layers"]):
        p = "%s.encoder.layers.%d." % (prefix, l)
        for n in ("layer_norm1", "layer_norm2"):
            w[p + n + ".weight"] = 1 + rnd(W, scale=0.1)
            w[p + n + ".bias"] = rnd(W, scale=0.1)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[p + "self_attn." + n + ".weight"] = rnd(W, W)
            w[p + "self_attn." + n + ".bias"] = rnd(W, scale=0.1)
        w[p + "mlp.fc1.weight"] = rnd(FF, W)
        w[p + "mlp.fc1.bias"] = rnd(FF, scale=0.1)
        w[p + "mlp.fc2.weight"] = rnd(W, FF)
        w[p + "mlp.fc2.bias"] = rnd(W, scale=0.1)


def ln(x, w, b, eps):
    m = x.mean(-1, keepdim=True)
    v = ((x - m) ** 2).mean(-1, keepdim=True)
    return (x - m) / torch.sqrt(v + eps) * w + b


def act(x, name):
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    return 0.5 * x * (1 + torch.erf(x / 2 ** 0.5))


def lin(x, w, p):
    return x @ w[p + ".weight"].T + (w[p + ".bias"] if p + ".bias" in w else 0)


def layer(x, w, p, cfg, causal):
    W, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = W // H
    h = ln(x, w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], cfg["layer_norm_eps"])
    n = x.shape[0]
    q = (lin(h, w, p + "self_attn.q_proj") * hd ** -0.5).view(n, H, hd).transpose(0, 1)
    k = lin(h, w, p + "self_attn.k_proj").view(n, H, hd).transpose(0, 1)
    v = lin(h, w, p + "self_attn.v_proj").view(n, H, hd).transpose(0, 1)
    s = q @ k.transpose(1, 2)
    if causal:
        s = s + torch.triu(torch.full((n, n), float("-inf"), dtype=D), 1)
    a = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(n, W)
    x = x + lin(a, w, p + "self_attn.out_proj")
    h = ln(x, w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], cfg["layer_norm_eps"])
    return x + lin(act(lin(h, w, p + "mlp.fc1"), cfg["hidden_act"]), w, p + "mlp.fc2")


def vision(w, px):
    W, P, S = V["hidden_size"], V["patch_size"], V["image_size"]
    G = S // P
    conv = torch.nn.functional.conv2d(px[None], w["vision_model.embeddings.patch_embedding.weight"], stride=P)
    patches = conv[0].reshape(W, G * G).T
    x = torch.cat([w["vision_model.embeddings.class_embedding"][None], patches], 0)
    x = x + w["vision_model.embeddings.position_embedding.weight"]
    eps = V["layer_norm_eps"]
    x = ln(x, w["vision_model.pre_layrnorm.weight"], w["vision_model.pre_layrnorm.bias"], eps)
    L = V["num_hidden_layers"]
    for l in range(L - 1):
        x = layer(x, w, "vision_model.encoder.layers.%d." % l, V, False)
    p = "vision_model.encoder.layers.%d." % (L - 1)
    h = ln(x[1:], w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], eps)
    z = lin(lin(h, w, p + "self_attn.v_proj"), w, p + "self_attn.out_proj")
    post = lambda y: ln(y, w["vision_model.post_layernorm.weight"], w["vision_model.post_layernorm.bias"], eps)
    patch = post(z) @ w["visual_projection.weight"].T
    x = layer(x, w, p, V, False)
    image = post(x[0]) @ w["visual_projection.weight"].T
    return image, patch


def text(w, ids):
    x = w["text_model.embeddings.token_embedding.weight"][ids] + \
        w["text_model.embeddings.position_embedding.weight"][: len(ids)]
    for l in range(T["num_hidden_layers"]):
        x = layer(x, w, "text_model.encoder.layers.%d." % l, T, True)
    x = ln(x, w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"], T["layer_norm_eps"])
    pos = ids.index(T["eos_token_id"])
    return x[pos] @ w["text_projection.weight"].T


def write_safetensors(path, w, bf16=False):
    header, blobs, off = {}, [], 0
    for k in sorted(w):
        if bf16:
            b = w[k].to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
        else:
            b = w[k].to(torch.float32).contiguous().numpy().tobytes()
        header[k] = {"dtype": "BF16" if bf16 else "F32", "shape": list(w[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    base = sys.argv[1]
    for bf16 in (False, True):
        torch.manual_seed(1515)
        build(base + ("-bf16" if bf16 else ""), bf16)


def build(out, bf16):
    os.makedirs(out, exist_ok=True)
    W, P, S, G = V["hidden_size"], V["patch_size"], V["image_size"], V["image_size"] // V["patch_size"]
    TW = T["hidden_size"]
    w = {}
    w["vision_model.embeddings.class_embedding"] = rnd(W)
    w["vision_model.embeddings.patch_embedding.weight"] = rnd(W, 3, P, P, scale=0.1)
    w["vision_model.embeddings.position_embedding.weight"] = rnd(G * G + 1, W)
    for n in ("pre_layrnorm", "post_layernorm"):
        w["vision_model.%s.weight" % n] = 1 + rnd(W, scale=0.1)
        w["vision_model.%s.bias" % n] = rnd(W, scale=0.1)
    tower_weights("vision_model", V, w)
    w["visual_projection.weight"] = rnd(PROJ, W)
    w["text_model.embeddings.token_embedding.weight"] = rnd(T["vocab_size"], TW)
    w["text_model.embeddings.position_embedding.weight"] = rnd(T["max_position_embeddings"], TW)
    w["text_model.final_layer_norm.weight"] = 1 + rnd(TW, scale=0.1)
    w["text_model.final_layer_norm.bias"] = rnd(TW, scale=0.1)
    tower_weights("text_model", T, w)
    w["text_projection.weight"] = rnd(PROJ, TW)
    w["logit_scale"] = torch.tensor(2.6592, dtype=D)
    if bf16:  # the folder stores bf16: the reference computes with the rounded weights
        w = {k: v.to(torch.bfloat16).to(D) for k, v in w.items()}
    write_safetensors(os.path.join(out, "model.safetensors"), w, bf16)
    cfg = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": PROJ,
           "logit_scale_init_value": 2.6592, "vision_config": V, "text_config": T}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
    json.dump({"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
               "crop_size": {"height": S, "width": S}, "size": {"shortest_edge": S}},
              open(os.path.join(out, "preprocessor_config.json"), "w"), indent=1)
    px = torch.randn(3, S, S, dtype=torch.float32).to(D)
    image, patch = vision(w, px)
    texts = [[38, 5, 7, 39], [38, 1, 2, 3, 4, 39, 0, 0], [38, 39]]
    temb = [text(w, t) for t in texts]
    cos = torch.nn.functional.cosine_similarity(patch, temb[0][None], dim=-1)
    # the simulator's path: uint8 images, LLaVA-style pad to a square with int(mean * 255),
    # normalisation, MaskCLIP cosine with text 0, 10 * clamp(cos, 0, 1), area means per grid cell
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], dtype=D)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], dtype=D)
    sims = []
    for (iw, ih, grid) in ((28, 28, 4), (28, 20, 2), (20, 28, 4)):
        rgb = torch.randint(0, 256, (ih, iw, 3))
        canvas = torch.empty(S, S, 3, dtype=torch.int64)
        canvas[:] = (mean * 255).to(torch.int64)
        ox, oy = (S - iw) // 2, (S - ih) // 2
        canvas[oy:oy + ih, ox:ox + iw] = rgb
        x = ((canvas.to(D) / 255 - mean) / std).permute(2, 0, 1)
        _, pe = vision(w, x)
        c = torch.nn.functional.cosine_similarity(pe, temb[0][None], dim=-1).reshape(G, G)
        a = 10 * c.clamp(0, 1)
        k = G // grid
        a = a.reshape(grid, k, grid, k).mean(dim=(1, 3))
        sims.append({"w": iw, "h": ih, "grid": grid, "rgb": rgb.flatten().tolist(), "sim": a.flatten().tolist()})
    exp = {"sim_cases": sims, "pixels": px.flatten().tolist(), "image_embed": image.tolist(), "patch_embed": patch.flatten().tolist(),
           "texts": [{"ids": t, "embed": e.tolist()} for t, e in zip(texts, temb)], "maskclip_cos": cos.tolist()}
    json.dump(exp, open(os.path.join(out, "expected.json"), "w"))


if __name__ == "__main__":
    main()
