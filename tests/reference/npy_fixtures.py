#!/usr/bin/python3
"""Writes .npy fixtures with numpy itself (tests/data/io/) for tests/io/test_npy.c:
the C reader must parse what numpy writes. Run: /usr/bin/python3 tests/reference/npy_fixtures.py"""
import os
import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "io")
os.makedirs(out, exist_ok=True)
# Values are simple formulas the C test recomputes.
np.save(os.path.join(out, "np_f4_3d.npy"), (np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5) * 0.5 - 3))
np.save(os.path.join(out, "np_u1_2d.npy"), (np.arange(4 * 7) * 37 % 256).astype(np.uint8).reshape(4, 7))
np.save(os.path.join(out, "np_i8_1d.npy"), np.arange(5, dtype=np.int64) * -1000000000000)
np.save(os.path.join(out, "np_f4_0d.npy"), np.float32(2.5))
np.save(os.path.join(out, "np_f4_empty.npy"), np.zeros((0, 3), dtype=np.float32))
np.save(os.path.join(out, "np_f8_8d.npy"), np.arange(2 ** 8, dtype=np.float64).reshape((2,) * 8))
np.save(os.path.join(out, "np_f4_fortran.npy"), np.asfortranarray(np.ones((2, 3), np.float32)))
np.save(os.path.join(out, "np_f4_big_endian.npy"), np.ones((2,), dtype=">f4"))
print("numpy", np.__version__, "->", out)
