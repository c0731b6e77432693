#!/usr/bin/python3
"""Make a CLIPModel folder for `vlmn bench clip` out of a llava-hf folder written by
`vlmn make-model --format hf`: its vision tower (vision_tower.vision_model.*, all blocks,
post-LN) copied byte for byte as vision_model.*, plus a seeded random visual projection
and a small random text tower (the benchmark times the vision side). BF16 like the
source. Usage: /usr/bin/python3 bench/clip_from_llava_hf.py LLAVA_DIR OUT_DIR [PROJ]"""
import json
import os
import struct
import sys

import torch


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def main():
    src, out = sys.argv[1], sys.argv[2]
    proj = int(sys.argv[3]) if len(sys.argv) > 3 else 768
    cfg = json.load(open(os.path.join(src, "config.json")))
    vc = dict(cfg["vision_config"])
    index = json.load(open(os.path.join(src, "model.safetensors.index.json")))["weight_map"]
    tensors = {}  # name -> (dtype, shape, bytes)
    pre = "vision_tower.vision_model."
    for shard in sorted(set(index.values())):
        path = os.path.join(src, shard)
        h, base = read_header(path)
        with open(path, "rb") as f:
            for k, v in h.items():
                if k == "__metadata__" or not k.startswith(pre):
                    continue
                f.seek(base + v["data_offsets"][0])
                tensors["vision_model." + k[len(pre):]] = (v["dtype"], v["shape"], f.read(v["data_offsets"][1] - v["data_offsets"][0]))
    g = torch.Generator().manual_seed(15)

    def rnd(*shape, scale=0.02):
        t = (torch.randn(*shape, generator=g) * scale).to(torch.bfloat16)
        return ("BF16", list(shape), t.view(torch.int16).numpy().tobytes())

    tw, tl, tff, vocab, ctx = 64, 1, 128, 1000, 77
    tensors["visual_projection.weight"] = rnd(proj, vc["hidden_size"])
    tensors["text_projection.weight"] = rnd(proj, tw)
    tensors["text_model.embeddings.token_embedding.weight"] = rnd(vocab, tw)
    tensors["text_model.embeddings.position_embedding.weight"] = rnd(ctx, tw)
    tensors["text_model.final_layer_norm.weight"] = rnd(tw, scale=1.0)
    tensors["text_model.final_layer_norm.bias"] = rnd(tw)
    for l in range(tl):
        p = "text_model.encoder.layers.%d." % l
        for n in ("layer_norm1", "layer_norm2"):
            tensors[p + n + ".weight"] = rnd(tw, scale=1.0)
            tensors[p + n + ".bias"] = rnd(tw)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            tensors[p + "self_attn." + n + ".weight"] = rnd(tw, tw)
            tensors[p + "self_attn." + n + ".bias"] = rnd(tw)
        tensors[p + "mlp.fc1.weight"], tensors[p + "mlp.fc1.bias"] = rnd(tff, tw), rnd(tff)
        tensors[p + "mlp.fc2.weight"], tensors[p + "mlp.fc2.bias"] = rnd(tw, tff), rnd(tw)
    os.makedirs(out, exist_ok=True)
    header, off = {}, 0
    for k in sorted(tensors):
        d, s, b = tensors[k]
        header[k] = {"dtype": d, "shape": s, "data_offsets": [off, off + len(b)]}
        off += len(b)
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj)
        for k in sorted(tensors):
            f.write(tensors[k][2])
    vc["model_type"] = "clip_vision_model"
    tc = {"model_type": "clip_text_model", "hidden_size": tw, "intermediate_size": tff, "num_hidden_layers": tl,
          "num_attention_heads": 4, "vocab_size": vocab, "max_position_embeddings": ctx, "eos_token_id": vocab - 1,
          "hidden_act": "quick_gelu"}
    json.dump({"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": proj, "vision_config": vc,
               "text_config": tc}, open(os.path.join(out, "config.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
