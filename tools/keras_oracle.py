#!/usr/bin/env python3
"""Writes kiln's golden vectors from real Keras 3 (JAX backend).

    pip install keras jax
    python3 tools/keras_oracle.py            # every module in tools/oracle/
    python3 tools/keras_oracle.py activations  # one module

Each module in tools/oracle/ defines `generate() -> dict` and writes
tests/golden/<module>.json. Rust tests read those files; they never run Python.
Inputs come from seeded NumPy generators, so reruns reproduce the same files.
"""
import importlib
import json
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

ROOT = pathlib.Path(__file__).resolve().parent.parent
ORACLE = pathlib.Path(__file__).resolve().parent / "oracle"
GOLDEN = ROOT / "tests" / "golden"


def main(argv):
    sys.path.insert(0, str(ORACLE.parent))
    names = argv or sorted(p.stem for p in ORACLE.glob("*.py") if not p.stem.startswith("_"))
    GOLDEN.mkdir(parents=True, exist_ok=True)
    import keras

    assert keras.backend.backend() == "jax", "the oracle must run on the JAX backend"
    for name in names:
        module = importlib.import_module(f"oracle.{name}")
        data = module.generate()
        data["_generator"] = {
            "script": f"tools/oracle/{name}.py",
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        }
        path = GOLDEN / f"{name}.json"
        with open(path, "w") as f:
            json.dump(data, f, indent=None, separators=(",", ":"), allow_nan=True)
            f.write("\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
