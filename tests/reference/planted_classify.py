#!/usr/bin/python3
"""Check the planted model against the paper's classification rule, independently of
vlmn's recorder and classifier (not run by the test suite: it probes hundreds of samples).

Runs `vlmn probe` on every sample of a generated demo dataset, keeps each neuron's top-50
samples by maximum activation, normalises by the neuron's global maximum (floor, 0..10),
calls a sample visual-activated when more than n_v=4 image tokens exceed T_v=2 and
text-activated when more than n_t=2 answer tokens exceed T_t=3 (paper section 3.2), and
prints each planted neuron's (p_visual, p_text, p_multimodal, p_unknown). Usage:
    vlmn make-dataset -o DS && vlmn make-model --preset planted -o PM
    /usr/bin/python3 tests/reference/planted_classify.py VLMN_BIN DS PM
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    vlmn, ds, pm = sys.argv[1:4]
    data = json.load(open(os.path.join(ds, "data.json")))
    acts, mods = [], []
    with tempfile.TemporaryDirectory() as out:
        for e in data:
            subprocess.run([vlmn, "probe", "-m", pm + "-text.gguf", "--mmproj", pm + "-mmproj.gguf",
                            "--image", os.path.join(ds, e["image"]),
                            "--question", e["conversations"][0]["value"].replace("<image>\n", ""),
                            "--answer", e["conversations"][1]["value"], "-t", "1", "-o", out], check=True)
            acts.append(np.load(os.path.join(out, "activations.npy")))
            mods.append(np.array([t["modality"] for t in json.load(open(os.path.join(out, "tokens.json")))]))
    names = ["visual", "text", "multimodal", "unknown"]
    good = 0
    planted = json.load(open(pm + "-planted.json"))
    for n in planted:
        l, j = n["layer"], n["neuron"]
        mx = np.array([a[l, :, j].max() for a in acts])
        gmax = max(0.0, float(mx.max()))
        top = np.argsort(-mx, kind="stable")[:50]
        p = np.zeros(4)
        for s in top:
            if gmax <= 0:
                p[3] += 1
                continue
            nrm = np.minimum(10, np.floor(10 * np.maximum(acts[s][l, :, j], 0) / gmax))
            v = (nrm[mods[s] == "image"] > 2).sum() > 4
            t = (nrm[mods[s] == "text"] > 3).sum() > 2
            p[0 if v and not t else 1 if t and not v else 2 if v and t else 3] += 1
        p /= len(top)
        k = names.index(n["type"])
        ok = p[k] >= 0.8 and int(np.argmax(p)) == k
        good += ok
        print(f"layer {l} neuron {j:3d} {n['type']:10s} {str(n['feature']):8s} p={np.round(p, 2)} {'OK' if ok else 'WRONG'}")
    print(f"{good}/{len(planted)} planted neurons get their true label with p >= 0.8")
    sys.exit(0 if good == len(planted) else 1)


if __name__ == "__main__":
    main()
