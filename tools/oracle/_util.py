"""Helpers shared by the oracle modules."""
import math

import numpy as np


def floats(a):
    """A NumPy array (any shape) as a flat row-major list of JSON-safe floats.

    NaN and infinities are written as the strings "nan", "inf", "-inf" so the JSON stays
    standard; tests/common/mod.rs reads them back.
    """
    out = []
    for v in np.asarray(a, dtype=np.float32).reshape(-1).tolist():
        if math.isnan(v):
            out.append("nan")
        elif math.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(v)
    return out


def rng(seed):
    return np.random.default_rng(seed)
