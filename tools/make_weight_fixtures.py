#!/usr/bin/env python3
"""Writes the seeded weight files that kiln's baked-weight tests compile in:

- examples/no_std/weights/sensor.safetensors: the no_std example's `Sensor` model
  (6 -> Dense 16 relu -> PReLU -> Dense 3 softmax);
- tests/data/baked/net.safetensors (F32) and net_f16.safetensors (F16): the `Net` model of
  tests/deploy.rs (4 -> Dense 5 tanh -> PReLU -> Dense 2 without bias).

The tests compare the baked models against forward passes written by hand, or against the
same file loaded at run time, so the values only need to be fixed, not trained.

    pip install numpy safetensors
    python3 tools/make_weight_fixtures.py
"""
import pathlib

import numpy as np
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent


def write(path, tensors, dtype=np.float32):
    path = ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(dtype) for k, v in tensors.items()}, str(path))
    print(f"wrote {path.relative_to(ROOT)}")


rng = np.random.default_rng(2026)
write(
    "examples/no_std/weights/sensor.safetensors",
    {
        "dense/kernel": rng.normal(0, 0.6, (6, 16)),
        "dense/bias": rng.normal(0, 0.1, (16,)),
        "p_re_lu/alpha": rng.uniform(0.0, 0.5, (16,)),
        "dense_1/kernel": rng.normal(0, 0.6, (16, 3)),
        "dense_1/bias": rng.normal(0, 0.1, (3,)),
    },
)

net = {
    "dense/kernel": rng.normal(0, 0.7, (4, 5)),
    "dense/bias": rng.normal(0, 0.1, (5,)),
    "p_re_lu/alpha": rng.uniform(0.0, 0.5, (5,)),
    "dense_1/kernel": rng.normal(0, 0.7, (5, 2)),
}
write("tests/data/baked/net.safetensors", net)
write("tests/data/baked/net_f16.safetensors", net, np.float16)
