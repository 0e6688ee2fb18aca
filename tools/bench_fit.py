#!/usr/bin/env python3
"""Times one training epoch of the digits model in Keras 3 (JAX backend) and PyTorch, on the
same data, model, optimizer and batch size as `examples/digits.rs` / `benches/fit.rs`.

    pip install keras jax torch
    python3 tools/bench_fit.py [--epochs 10] [--single-thread]

Prints the median milliseconds per epoch (after one warm-up epoch) for each framework; Keras
is timed both as one `fit(epochs=1)` call per epoch and per epoch inside one `fit` call.
"""
import argparse
import os
import pathlib
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
BATCH = 32
HIDDEN = (128, 64)


def load():
    data = np.loadtxt(ROOT / "examples/data/digits/digits.csv", delimiter=",", dtype=np.float32)
    x, y = data[:, :64] / 16.0, data[:, 64].astype(np.int64)
    split = int(len(x) * 0.8)
    return x[:split], y[:split], x[split:], y[split:]


def keras_epochs(x, y, epochs):
    import keras

    model = keras.Sequential(
        [keras.Input(shape=(64,))]
        + [keras.layers.Dense(h, activation="relu") for h in HIDDEN]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        times.append(time.perf_counter() - start)
    return times[1:]


def keras_epochs_in_fit(x, y, epochs, steps_per_execution=1):
    """Epochs timed inside one `fit(epochs=...)` call by a callback: without the per-call
    setup of `fit` (data adapter, callbacks), which a long training run pays only once.
    `steps_per_execution` > 1 runs that many steps per compiled call (not Keras's default)."""
    import keras

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    model = keras.Sequential(
        [keras.Input(shape=(64,))]
        + [keras.layers.Dense(h, activation="relu") for h in HIDDEN]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="sparse_categorical_crossentropy",
        steps_per_execution=steps_per_execution,
    )
    timer = Timer()
    model.fit(x, y, batch_size=BATCH, epochs=epochs + 1, shuffle=True, verbose=0, callbacks=[timer])
    return timer.times[1:]


def torch_epochs(x, y, epochs):
    import torch

    torch.manual_seed(0)
    layers, width = [], 64
    for h in HIDDEN:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return times[1:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--single-thread",
        action="store_true",
        help="limit XLA and PyTorch to one thread, as kiln's training loop uses",
    )
    args = parser.parse_args()
    if args.single_thread:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        import torch

        torch.set_num_threads(1)
    x, y, _, _ = load()
    print(f"train samples: {len(x)}, batch {BATCH}, model 64-{'-'.join(map(str, HIDDEN))}-10")
    runs = [
        ("keras-jax, fit(epochs=1) per epoch", keras_epochs),
        ("keras-jax, epochs inside one fit", keras_epochs_in_fit),
        (
            "keras-jax, epochs inside one fit, steps_per_execution=45 (one call per epoch)",
            lambda x, y, epochs: keras_epochs_in_fit(x, y, epochs, steps_per_execution=45),
        ),
        ("pytorch", torch_epochs),
    ]
    for name, run in runs:
        times = run(x, y, args.epochs)
        print(f"{name}: median {statistics.median(times) * 1e3:.2f} ms/epoch over {len(times)} epochs")


if __name__ == "__main__":
    main()
