#!/usr/bin/env python3
"""Float64 AUROC reference for tests/explain/test_dscore.c (detection / fuzzing scorers).
Independent of vlmn: the Mann-Whitney statistic counted pair by pair with exact fractions
(a positive scoring above a negative counts 1, a tie 1/2), divided by n_pos * n_neg.
Writes tests/data/explain/auroc.txt: a line with the number of cases, then per case a
line "n", the scores (%.17g), the labels (0/1) and the AUROC (%.17g).
Run: /usr/bin/python3 tests/reference/auroc_ref.py"""
import random
from fractions import Fraction


def auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    u = Fraction(0)
    for p in pos:
        for q in neg:
            if p > q:
                u += 1
            elif p == q:
                u += Fraction(1, 2)
    return float(u / (len(pos) * len(neg)))


rng = random.Random(20261207)
cases = []
for n in [2, 3, 10, 37, 100, 500]:
    labels = [rng.randint(0, 1) for _ in range(n)]
    labels[0], labels[1] = 1, 0
    scores = [rng.random() + 0.3 * y for y in labels]
    cases.append((scores, labels))
# hard 0/1 answers: most pairs tied (the 0.5 rule)
for n in [10, 64]:
    labels = [i % 2 for i in range(n)]
    scores = [float(y if rng.random() < 0.8 else 1 - y) for y in labels]
    cases.append((scores, labels))
# probabilities on a coarse grid: ties across and within classes
labels = [rng.randint(0, 1) for _ in range(200)]
labels[0], labels[1] = 1, 0
scores = [round(min(1.0, max(0.0, 0.5 + 0.25 * (2 * y - 1) + rng.gauss(0, 0.3))), 1) for y in labels]
cases.append((scores, labels))
# all tied, perfectly separated, inverted, unbalanced
cases.append(([0.5] * 7, [1, 0, 1, 0, 0, 1, 0]))
cases.append(([0.9, 0.8, 0.1, 0.2, 0.3], [1, 1, 0, 0, 0]))
cases.append(([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]))
cases.append(([0.3] + [rng.random() for _ in range(49)], [1] + [0] * 49))
with open("tests/data/explain/auroc.txt", "w") as f:
    f.write(f"{len(cases)}\n")
    for s, y in cases:
        f.write(f"{len(s)}\n")
        f.write(" ".join("%.17g" % v for v in s) + "\n")
        f.write(" ".join(str(v) for v in y) + "\n")
        f.write("%.17g\n" % auroc(s, y))
