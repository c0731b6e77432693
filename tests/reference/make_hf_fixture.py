#!/usr/bin/python3
"""Tiny LLaVA-1.5 and CLIP models as Hugging Face folders (tests/data/hf/).

Each LLaVA folder holds the same weights as one GGUF pair of tests/data/engine/ (written
by llava_ref.py), in the layout transformers' LlavaForConditionalGeneration saves:
config.json, preprocessor_config.json, tokenizer_config.json, tokenizer.model and
safetensors written by hand here (8-byte LE header length + JSON + raw data):
  - HF tensor names (vision_tower.vision_model.*, multi_modal_projector.linear_1/2,
    language_model.model.layers.*; "f16" uses the newer model.language_model.* /
    model.vision_tower.* / model.multi_modal_projector.* / lm_head names);
  - Q/K rows un-permuted (the converter's RoPE permutation undone, row for row, on the
    stored bytes: same dtype, same values);
  - ALL CLIP blocks: where the GGUF mmproj is a legacy one (last block dropped), a random
    last block and a post_layernorm are added, as the HF checkpoint has them, with
    vision_feature_layer = -2; the golden activations of llava_ref.py (computed without
    that block) must therefore still hold;
  - "bf16" is written as two shards with model.safetensors.index.json.
The f32 model is also written in the original LLaVA layout (orig/llava-v1.5-tiny-f32 with
the separate CLIP folder orig/clip-vit-tiny; see original_layout()). Also a tiny CLIPModel
folder (vision_model, text_model, visual_projection, text_projection) for `vlmn info`. Nothing here uses vlmn. Run:
    /usr/bin/python3 tests/reference/make_hf_fixture.py
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_py as G  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINE = os.path.join(HERE, "..", "data", "engine")
OUT = os.path.join(HERE, "..", "data", "hf")
DTYPE = {G.GGML_F32: "F32", G.GGML_F16: "F16", G.GGML_BF16: "BF16"}


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype string, shape, raw bytes), written in this order."""
    hdr, off = {}, 0
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    hdr["__metadata__"] = {"format": "pt"}
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def unpermute_rows(raw, shape, n_head):
    """Undo llama.cpp's permute on the rows of a stored matrix (bytes, any dtype)."""
    rows = shape[0]
    a = np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1)
    hd = rows // n_head
    return a.reshape(n_head, hd // 2, 2, -1).swapaxes(1, 2).reshape(rows, -1).tobytes()


def permute_rows(raw, shape, n_head):
    rows = shape[0]
    a = np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1)
    hd = rows // n_head
    return a.reshape(n_head, 2, hd // 2, -1).swapaxes(1, 2).reshape(rows, -1).tobytes()


def rand_tensor(rng, shape, gtype, scale=0.2):
    return G.encode_tensor((rng.standard_normal(shape) * scale).astype(np.float32), gtype)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def convert(name, new_names, shards, seed):
    rng = np.random.default_rng(seed)
    tr = G.GGUFReader(os.path.join(ENGINE, name + ".text.gguf"))
    vr = G.GGUFReader(os.path.join(ENGINE, name + ".mmproj.gguf"))
    tm, vm = tr.metadata, vr.metadata
    E, L, FF = tm["llama.embedding_length"], tm["llama.block_count"], tm["llama.feed_forward_length"]
    H, HKV = tm["llama.attention.head_count"], tm["llama.attention.head_count_kv"]
    lm = "model.language_model." if new_names else "language_model.model."
    vt = "model.vision_tower.vision_model." if new_names else "vision_tower.vision_model."
    pj = "model.multi_modal_projector." if new_names else "multi_modal_projector."
    out = []

    def put(hf, gg, perm_heads=None, reader=tr):
        t, shape, raw = reader.tensors[gg]
        if perm_heads:
            raw = unpermute_rows(raw, shape, perm_heads)
            assert permute_rows(raw, shape, perm_heads) == reader.tensors[gg][2]
        out.append((hf, DTYPE[t], shape, raw))

    put(lm + "embed_tokens.weight", "token_embd.weight")
    for l in range(L):
        p, q = f"{lm}layers.{l}.", f"blk.{l}."
        put(p + "input_layernorm.weight", q + "attn_norm.weight")
        put(p + "self_attn.q_proj.weight", q + "attn_q.weight", H)
        put(p + "self_attn.k_proj.weight", q + "attn_k.weight", HKV)
        put(p + "self_attn.v_proj.weight", q + "attn_v.weight")
        put(p + "self_attn.o_proj.weight", q + "attn_output.weight")
        put(p + "post_attention_layernorm.weight", q + "ffn_norm.weight")
        put(p + "mlp.gate_proj.weight", q + "ffn_gate.weight")
        put(p + "mlp.up_proj.weight", q + "ffn_up.weight")
        put(p + "mlp.down_proj.weight", q + "ffn_down.weight")
    put(lm + "norm.weight", "output_norm.weight")
    tied = "output.weight" not in tr.tensors
    if not tied:
        put(("lm_head.weight" if new_names else "language_model.lm_head.weight"), "output.weight")

    VW, VFF, VL = vm["clip.vision.embedding_length"], vm["clip.vision.feed_forward_length"], vm["clip.vision.block_count"]
    fl = vm.get("clip.vision.feature_layer")
    legacy_drop = fl is None          # legacy mmproj: the last block was dropped
    put(vt + "embeddings.class_embedding", "v.class_embd", reader=vr)
    put(vt + "embeddings.patch_embedding.weight", "v.patch_embd.weight", reader=vr)
    put(vt + "embeddings.position_embedding.weight", "v.position_embd.weight", reader=vr)
    put(vt + "pre_layrnorm.weight", "v.pre_ln.weight", reader=vr)
    put(vt + "pre_layrnorm.bias", "v.pre_ln.bias", reader=vr)
    for l in range(VL):
        p, q = f"{vt}encoder.layers.{l}.", f"v.blk.{l}."
        dn = vr.tensors[q + "ffn_down.weight"][1]      # PyTorch shape [out, in]
        fc1_name = "ffn_down" if dn == (VFF, VW) else "ffn_up"
        fc2_name = "ffn_up" if fc1_name == "ffn_down" else "ffn_down"
        for hf, gg in [("layer_norm1", "ln1"), ("layer_norm2", "ln2"), ("self_attn.q_proj", "attn_q"),
                       ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
                       ("self_attn.out_proj", "attn_out"), ("mlp.fc1", fc1_name), ("mlp.fc2", fc2_name)]:
            for s in ("weight", "bias"):
                put(f"{p}{hf}.{s}", f"{q}{gg}.{s}", reader=vr)
    n_blocks = VL
    if legacy_drop:
        # the block the legacy converter dropped, and CLIP's post-LN: unused by LLaVA
        p = f"{vt}encoder.layers.{VL}."
        wt = vr.tensors["v.blk.0.attn_q.weight"][0]
        for hf, shp in [("layer_norm1", (VW,)), ("layer_norm2", (VW,))]:
            out.append((p + hf + ".weight", "F32", shp, rand_tensor(rng, shp, G.GGML_F32)))
            out.append((p + hf + ".bias", "F32", shp, rand_tensor(rng, shp, G.GGML_F32)))
        for hf, shp in [("self_attn.q_proj", (VW, VW)), ("self_attn.k_proj", (VW, VW)), ("self_attn.v_proj", (VW, VW)),
                        ("self_attn.out_proj", (VW, VW)), ("mlp.fc1", (VFF, VW)), ("mlp.fc2", (VW, VFF))]:
            out.append((p + hf + ".weight", DTYPE[wt], shp, rand_tensor(rng, shp, wt)))
            out.append((p + hf + ".bias", "F32", (shp[0],), rand_tensor(rng, (shp[0],), G.GGML_F32)))
        n_blocks = VL + 1
    out.append((vt + "post_layernorm.weight", "F32", (VW,), rand_tensor(rng, (VW,), G.GGML_F32)))
    out.append((vt + "post_layernorm.bias", "F32", (VW,), rand_tensor(rng, (VW,), G.GGML_F32)))
    put(pj + "linear_1.weight", "mm.0.weight", reader=vr)
    put(pj + "linear_1.bias", "mm.0.bias", reader=vr)
    put(pj + "linear_2.weight", "mm.2.weight", reader=vr)
    put(pj + "linear_2.bias", "mm.2.bias", reader=vr)
    feature_layer = fl if fl is not None else -2

    d = os.path.join(OUT, "llava-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), out)
    else:
        half = len(out) // 2
        parts = [out[:half], out[half:]]
        wm = {}
        for i, part in enumerate(parts):
            fn = f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
            write_safetensors(os.path.join(d, fn), part)
            wm.update({t[0]: fn for t in part})
        write_json(os.path.join(d, "model.safetensors.index.json"),
                   {"metadata": {"total_size": sum(len(t[3]) for t in out)}, "weight_map": wm})
    V = tr.tensors["token_embd.weight"][1][0]
    tc = {"model_type": "llama", "hidden_size": E, "intermediate_size": FF, "num_hidden_layers": L,
          "num_attention_heads": H, "num_key_value_heads": HKV,
          "max_position_embeddings": tm["llama.context_length"],
          "rms_norm_eps": tm["llama.attention.layer_norm_rms_epsilon"], "vocab_size": V,
          "tie_word_embeddings": tied, "hidden_act": "silu"}
    if "llama.rope.freq_base" in tm:
        tc["rope_theta"] = tm["llama.rope.freq_base"]
    vc = {"model_type": "clip_vision_model", "hidden_size": VW, "intermediate_size": VFF,
          "num_hidden_layers": n_blocks, "num_attention_heads": vm["clip.vision.attention.head_count"],
          "image_size": vm["clip.vision.image_size"], "patch_size": vm["clip.vision.patch_size"],
          "layer_norm_eps": vm["clip.vision.attention.layer_norm_epsilon"], "projection_dim": E,
          "hidden_act": "gelu" if vm.get("clip.use_gelu") else "quick_gelu"}
    write_json(os.path.join(d, "config.json"),
               {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
                "image_token_index": V, "projector_hidden_act": "gelu",
                "vision_feature_layer": feature_layer, "vision_feature_select_strategy": "default",
                "text_config": tc, "vision_config": vc, "tie_word_embeddings": tied,
                "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[name]})
    S = vm["clip.vision.image_size"]
    write_json(os.path.join(d, "preprocessor_config.json"),
               {"image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": S},
                "do_center_crop": True, "crop_size": {"height": S, "width": S}, "do_rescale": True,
                "rescale_factor": 1 / 255, "do_normalize": True, "resample": 3,
                "image_mean": [float(x) for x in vm["clip.vision.image_mean"]],
                "image_std": [float(x) for x in vm["clip.vision.image_std"]]})
    write_json(os.path.join(d, "tokenizer_config.json"),
               {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False})
    shutil.copyfile(os.path.join(ENGINE, "tiny.spm.model"), os.path.join(d, "tokenizer.model"))
    return out, tc, vc, feature_layer, tied, d


def original_layout(converted, name):
    """The same model in the original LLaVA layout (liuhaotian/llava-v1.5-7b: the
    LlavaLlamaForCausalLM class of LLaVA's own code), as if converted to safetensors:
    model.* / lm_head text tensors and model.mm_projector.0/2 in the LLaVA folder, flat
    LLaMA config keys plus mm_* keys, and the vision tower in a separate CLIPModel folder
    (vision_model.*) next to it, named after mm_vision_tower."""
    out, tc, vc, feature_layer, tied, hf_dir = converted
    root = os.path.join(OUT, "orig")
    ld, cd = os.path.join(root, "llava-v1.5-tiny-" + name), os.path.join(root, "clip-vit-tiny")
    for x in (ld, cd):
        shutil.rmtree(x, ignore_errors=True)
        os.makedirs(x)
    text, clip = [], []
    for hf, dt, shape, raw in out:
        if hf.startswith("language_model.model."):
            text.append(("model." + hf[len("language_model.model."):], dt, shape, raw))
        elif hf == "language_model.lm_head.weight":
            text.append(("lm_head.weight", dt, shape, raw))
        elif hf.startswith("multi_modal_projector.linear_"):
            k = {"1": "0", "2": "2"}[hf[len("multi_modal_projector.linear_")]]
            text.append(("model.mm_projector." + k + hf[len("multi_modal_projector.linear_1"):], dt, shape, raw))
        elif hf.startswith("vision_tower.vision_model."):
            clip.append(("vision_model." + hf[len("vision_tower.vision_model."):], dt, shape, raw))
        else:
            raise ValueError(hf)
    write_safetensors(os.path.join(ld, "model.safetensors"), text)
    write_safetensors(os.path.join(cd, "model.safetensors"), clip)
    cfg = dict(tc)
    cfg.update({"architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava",
                "mm_vision_tower": "openai/clip-vit-tiny", "mm_hidden_size": vc["hidden_size"],
                "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": feature_layer,
                "mm_vision_select_feature": "patch", "image_aspect_ratio": "pad",
                "mm_use_im_start_end": False, "mm_use_im_patch_token": False, "tie_word_embeddings": tied,
                "torch_dtype": "float32"})
    write_json(os.path.join(ld, "config.json"), cfg)
    for f in ("tokenizer_config.json", "tokenizer.model"):
        shutil.copyfile(os.path.join(hf_dir, f), os.path.join(ld, f))
    shutil.copyfile(os.path.join(hf_dir, "preprocessor_config.json"), os.path.join(cd, "preprocessor_config.json"))
    write_json(os.path.join(cd, "config.json"),
               {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": tc["hidden_size"],
                "vision_config": vc, "text_config": {"model_type": "clip_text_model", "hidden_size": 16,
                                                     "num_hidden_layers": 1, "num_attention_heads": 2}})


def clip_folder(seed):
    """A tiny CLIPModel (openai/clip-vit-* layout) with random F32 weights."""
    rng = np.random.default_rng(seed)
    VW, VFF, VL, TW, TFF, TL, PD, P, S, V, NT = 24, 40, 2, 16, 36, 2, 12, 14, 28, 50, 9
    out = []

    def add(name, shape):
        out.append((name, "F32", shape, rand_tensor(rng, shape, G.GGML_F32)))

    def enc(prefix, W, FF, n):
        for l in range(n):
            p = f"{prefix}encoder.layers.{l}."
            for ln in ("layer_norm1", "layer_norm2"):
                add(p + ln + ".weight", (W,))
                add(p + ln + ".bias", (W,))
            for pr in ("q_proj", "k_proj", "v_proj", "out_proj"):
                add(p + "self_attn." + pr + ".weight", (W, W))
                add(p + "self_attn." + pr + ".bias", (W,))
            add(p + "mlp.fc1.weight", (FF, W))
            add(p + "mlp.fc1.bias", (FF,))
            add(p + "mlp.fc2.weight", (W, FF))
            add(p + "mlp.fc2.bias", (W,))

    add("vision_model.embeddings.class_embedding", (VW,))
    add("vision_model.embeddings.patch_embedding.weight", (VW, 3, P, P))
    add("vision_model.embeddings.position_embedding.weight", ((S // P) ** 2 + 1, VW))
    add("vision_model.pre_layrnorm.weight", (VW,))
    add("vision_model.pre_layrnorm.bias", (VW,))
    enc("vision_model.", VW, VFF, VL)
    add("vision_model.post_layernorm.weight", (VW,))
    add("vision_model.post_layernorm.bias", (VW,))
    add("text_model.embeddings.token_embedding.weight", (V, TW))
    add("text_model.embeddings.position_embedding.weight", (NT, TW))
    enc("text_model.", TW, TFF, TL)
    add("text_model.final_layer_norm.weight", (TW,))
    add("text_model.final_layer_norm.bias", (TW,))
    add("visual_projection.weight", (PD, VW))
    add("text_projection.weight", (PD, TW))
    out.append(("logit_scale", "F32", (), struct.pack("<f", 2.6592)))
    d = os.path.join(OUT, "clip")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    write_safetensors(os.path.join(d, "model.safetensors"), out)
    write_json(os.path.join(d, "config.json"),
               {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": PD,
                "text_config": {"model_type": "clip_text_model", "hidden_size": TW, "intermediate_size": TFF,
                                "num_hidden_layers": TL, "num_attention_heads": 2, "vocab_size": V,
                                "max_position_embeddings": NT, "hidden_act": "quick_gelu"},
                "vision_config": {"model_type": "clip_vision_model", "hidden_size": VW, "intermediate_size": VFF,
                                  "num_hidden_layers": VL, "num_attention_heads": 2, "image_size": S,
                                  "patch_size": P, "hidden_act": "quick_gelu"}})


def main():
    os.makedirs(OUT, exist_ok=True)
    original_layout(convert("f32", new_names=False, shards=1, seed=7001), "f32")
    convert("f16", new_names=True, shards=1, seed=7002)
    convert("bf16", new_names=False, shards=2, seed=7003)
    clip_folder(7004)


if __name__ == "__main__":
    main()
