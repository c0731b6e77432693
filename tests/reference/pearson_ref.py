#!/usr/bin/env python3
"""Float64 Pearson reference for tests/explain/test_explain.c (paper A.3, eq. 1).
Writes tests/data/explain/pearson.txt: per case a line "n", then x values, y values
(float32-exact decimals, %.9g) and r (%.17g) from numpy.corrcoef in float64.
Run: /usr/bin/python3 tests/reference/pearson_ref.py"""
import numpy as np

rng = np.random.default_rng(20261207)
cases = []
for n in [2, 3, 5, 17, 100, 576, 1000, 4096]:
    x = rng.normal(size=n).astype(np.float32)
    y = (0.3 * x + rng.normal(size=n)).astype(np.float32)
    cases.append((x, y))
# integer simulations 0..10 against activations with an offset (as the scorer sees them)
x = (rng.random(300) * 3 - 0.5).astype(np.float32)
y = np.clip(np.floor(x * 4 + rng.normal(size=300)), 0, 10).astype(np.float32)
cases.append((x, y))
# large offset: the two-pass formula must not lose digits
x = (1000 + rng.normal(size=200)).astype(np.float32)
y = (x - 1000 + 0.5 * rng.normal(size=200)).astype(np.float32)
cases.append((x, y))
with open("tests/data/explain/pearson.txt", "w") as f:
    f.write(f"{len(cases)}\n")
    for x, y in cases:
        r = np.corrcoef(x.astype(np.float64), y.astype(np.float64))[0, 1]
        f.write(f"{len(x)}\n")
        f.write(" ".join("%.9g" % v for v in x) + "\n")
        f.write(" ".join("%.9g" % v for v in y) + "\n")
        f.write("%.17g\n" % r)
