#!/usr/bin/python3
"""Independent reference for vlmn's COCO RLE code (src/segment/rle.c): masks flattened
in column-major (Fortran) order with numpy, runs starting with zeros, and the compressed
string written as pycocotools' rleToString does (5-bit groups + continuation bit 0x20,
sign bit 0x10, offset 48, run i > 2 stored as the difference to run i - 2).
Writes tests/data/segment/rle_fixture.json: [{h, w, rows: ["0110", ...], runs, counts}].
Usage: /usr/bin/python3 tests/reference/rle_ref.py > tests/data/segment/rle_fixture.json"""
import json
import numpy as np


def runs_of(mask):
    flat = mask.flatten(order="F").astype(np.int64)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    lengths = np.diff(np.concatenate([[0], change]))
    # starts with a 0-run (possibly empty); np.diff splits at every change incl. the sentinel
    return [int(x) for x in lengths]


def to_string(runs):
    out = []
    for i, r in enumerate(runs):
        x = r - runs[i - 2] if i > 2 else r
        while True:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
            if not more:
                break
    return "".join(out)


def main():
    rng = np.random.default_rng(15)
    cases = []
    shapes = [(1, 1), (1, 5), (4, 1), (3, 3), (7, 5), (16, 16), (40, 33), (64, 90)]
    for h, w in shapes:
        for kind in range(3):
            if kind == 0:
                m = rng.random((h, w)) < 0.5
            elif kind == 1:  # a blob: long runs, deltas of both signs
                yy, xx = np.mgrid[0:h, 0:w]
                m = (yy - rng.uniform(0, h)) ** 2 + (xx - rng.uniform(0, w)) ** 2 < (0.4 * max(h, w)) ** 2
            else:
                m = np.full((h, w), bool(rng.integers(2)))
            runs = runs_of(m)
            assert sum(runs) == h * w
            cases.append({"h": h, "w": w, "rows": ["".join("1" if v else "0" for v in row) for row in m],
                          "runs": runs, "counts": to_string(runs)})
    print(json.dumps(cases))


if __name__ == "__main__":
    main()
