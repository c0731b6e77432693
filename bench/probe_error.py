#!/usr/bin/python3
"""Per-layer normwise relative error ||a - b|| / ||b|| between two `vlmn probe`
outputs (activations.npy, float32 [layers, tokens, n_ff]), b being the reference
(e.g. --precision exact). Usage: probe_error.py A_DIR B_DIR [--positions image|text|all]
Reads tokens.json of B for the modality of each position."""
import json
import sys

import numpy as np


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a = np.load(sys.argv[1] + "/activations.npy", mmap_mode="r")
    b = np.load(sys.argv[2] + "/activations.npy", mmap_mode="r")
    if a.shape != b.shape:
        sys.exit(f"shapes differ: {a.shape} vs {b.shape}")
    toks = json.load(open(sys.argv[2] + "/tokens.json"))
    groups = {"all": np.arange(a.shape[1]),
              "image": np.array([t["pos"] for t in toks if t["modality"] == "image"], dtype=np.int64),
              "text": np.array([t["pos"] for t in toks if t["modality"] == "text"], dtype=np.int64)}
    worst = {k: 0.0 for k in groups}
    print("layer " + " ".join(f"{k:>9}" for k in groups))
    for l in range(a.shape[0]):
        al = np.asarray(a[l], dtype=np.float64)
        bl = np.asarray(b[l], dtype=np.float64)
        row = []
        for k, idx in groups.items():
            if idx.size == 0:
                row.append(float("nan"))
                continue
            d = np.linalg.norm(al[idx] - bl[idx]) / max(np.linalg.norm(bl[idx]), 1e-300)
            worst[k] = max(worst[k], d)
            row.append(d)
        print(f"{l:5d} " + " ".join(f"{x:9.2e}" for x in row))
    print("worst " + " ".join(f"{worst[k]:9.2e}" for k in groups))


if __name__ == "__main__":
    main()
