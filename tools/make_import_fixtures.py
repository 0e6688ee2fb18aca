#!/usr/bin/env python3
"""Writes the end-to-end fixtures of tools/keras_export.py (tests/keras_import/).

    pip install keras jax safetensors
    python3 tools/make_import_fixtures.py          # every case
    python3 tools/make_import_fixtures.py mlp      # one case

For each case, with fixed seeds: builds a small Keras 3 model (JAX backend), trains it for a
few epochs on seeded synthetic data (so its weights are not initial values), saves it as
tests/keras_import/<case>/model.keras, runs tools/keras_export.py on that file (writing
model.rs and weights.safetensors beside it), reloads the saved file and writes
cases.json: seeded inputs `x`, the reloaded model's predictions `y` (or `calls`, below),
the weight names kiln must list (`weight_names`, Keras's variable paths without the model
names) and Keras's raw paths, shapes, and the Keras/JAX versions. tests/keras_import.rs
reads them; cargo test never runs Python.

The cases:
- mlp: Sequential Input(10) -> Dense(16, relu) -> Dense(8, tanh) -> Dense(3, softmax);
- activations: Sequential with PReLU (Constant(0.25) alpha initializer), Dropout,
  LeakyReLU, ActivityRegularization, ELU, an l2 kernel regularizer and a max_norm constraint,
  and hyphenated layer names;
- masked: a Functional single chain Input(24) -> Reshape((6, 4)) -> Masking(-1) -> a nested
  Sequential (Dense relu, Dropout) -> Dense(3) -> Activation("softmax"), inputs with whole
  timesteps equal to the mask value (which Masking zeroes). The softmax is an activation,
  not a `Softmax` layer: Keras 3 hands a `Softmax` layer after Masking a (batch, timesteps)
  mask that it broadcasts from the last axis (an error here), which keras_export.py refuses;
- normalization: Sequential on (6, 4) with BatchNormalization (momentum 0.8, a hyphenated
  name; and over axis 1 without center), LayerNormalization over axes [1, 2] and over the
  last axis: its moving statistics come from training;
- sequence: Keras's canonical sequence classifier, Input((7,), dtype="int32") ->
  Embedding(12, 8, mask_zero=True) -> Bidirectional(LSTM(6, return_sequences=True)) ->
  GRU(5) -> Dense(3, softmax), inputs with zero-padded tails of every length (one row all
  padding);
- streaming: Input(batch_shape=(2, None, 3)) -> LSTM(8, stateful=True,
  return_sequences=True) -> Dense(1), the stateful model saved with the weights of a copy
  without state trained on fixed-length sequences. Its cases.json holds `calls` instead of
  `x` / `y`: consecutive `model(x)` calls on (2, timesteps, 3) chunks, each with
  `reset_before` (every stateful layer's `reset_state()` first), which kiln's
  `predict_stateful` must reproduce with one state per sample; each row's chunks between
  resets are also one sequence (checked here against one Keras call on them).

model.keras is rewritten with a fixed `date_saved`, renumbered `shared_object_id`s and fixed
zip timestamps, so reruns on the same versions give the same bytes.
"""
import json
import os
import pathlib
import subprocess
import sys
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
FIXTURES = ROOT / "tests" / "keras_import"
BATCH = 8

sys.path.insert(0, str(TOOLS))
import numpy as np  # noqa: E402

from oracle._util import floats, rng  # noqa: E402


def mlp():
    import keras

    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(10,)),
            L.Dense(16, activation="relu"),
            L.Dense(8, activation="tanh"),
            L.Dense(3, activation="softmax"),
        ],
        name="mlp",
    )
    g = rng(101)
    x = g.normal(0.0, 1.0, size=(256, 10)).astype("float32")
    w = g.normal(0.0, 1.0, size=(10, 3)).astype("float32")
    y = (x @ w).argmax(axis=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    return model, g.normal(0.0, 1.5, size=(BATCH, 10)).astype("float32")


def activations():
    import keras

    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(12,)),
            L.Dense(16, name="dense-in"),
            L.PReLU(alpha_initializer=keras.initializers.Constant(0.25)),
            L.Dropout(0.2, seed=7),
            L.Dense(12, kernel_regularizer=keras.regularizers.L2(0.001), name="hidden-2"),
            L.LeakyReLU(negative_slope=0.1),
            L.ActivityRegularization(l1=1e-4, l2=1e-3, name="act-reg"),
            L.Dense(8, kernel_constraint=keras.constraints.MaxNorm(2.0)),
            L.ELU(alpha=0.7),
            L.Dense(2, name="out"),
        ],
        name="activations",
    )
    g = rng(102)
    x = g.normal(0.0, 1.0, size=(256, 12)).astype("float32")
    t = g.normal(0.0, 1.0, size=(12, 2)).astype("float32")
    y = (abs(x) @ t - 0.5 * x[:, :2]).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model, g.normal(0.0, 1.5, size=(BATCH, 12)).astype("float32")


# Not 0: Masking zeroes masked timesteps, which only changes the numbers when they were not
# already zero.
MASK_VALUE = -1.0


def masked_inputs(g, n):
    """(n, 24) samples seen as (6, 4): every sample has one or two whole timesteps equal to
    the mask value, and a single entry equal to it inside a kept timestep."""
    x = g.normal(0.0, 1.0, size=(n, 6, 4)).astype("float32")
    for b in range(n):
        x[b, b % 6, :] = MASK_VALUE
        if b % 2 == 0:
            x[b, (b + 3) % 6, :] = MASK_VALUE
        x[b, (b + 1) % 6, b % 4] = MASK_VALUE
    return x.reshape(n, 24)


def masked():
    import keras

    L = keras.layers
    per_step = keras.Sequential(
        [L.Dense(8, activation="relu", name="step-dense"), L.Dropout(0.1, name="step-dropout")],
        name="per_step",
    )
    inputs = keras.Input(shape=(24,), name="features")
    h = L.Reshape((6, 4))(inputs)
    h = L.Masking(mask_value=MASK_VALUE)(h)
    h = per_step(h)
    h = L.Dense(3, name="logits")(h)
    outputs = L.Activation("softmax", name="probabilities")(h)
    model = keras.Model(inputs, outputs, name="masked")
    g = rng(103)
    x = masked_inputs(g, 256)
    y = x.reshape(256, 6, 4).sum(axis=-1)
    y = ((y > 0.5).astype("int32") + (y > -0.5).astype("int32"))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    return model, masked_inputs(g, BATCH)


def normalization():
    import keras

    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(6, 4)),
            L.Dense(8, name="conv1"),
            L.BatchNormalization(momentum=0.8, name="conv1-BN"),
            L.Activation("relu"),
            L.LayerNormalization(axis=[1, 2], name="ln-all"),
            L.Dense(5),
            L.BatchNormalization(axis=1, center=False),
            L.LayerNormalization(epsilon=1e-5),
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ],
        name="normalization",
    )
    g = rng(104)
    x = g.normal(0.5, 2.0, size=(256, 6, 4)).astype("float32")
    y = (x.sum(axis=1) @ g.normal(0.0, 1.0, size=(4, 3))).argmax(axis=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    return model, g.normal(0.5, 2.0, size=(BATCH, 6, 4)).astype("float32")


SEQ_LEN, VOCAB = 7, 12


def padded_ids(g, lengths):
    """Rows of SEQ_LEN ids in 1..VOCAB-1, zero (masked by `mask_zero`) after each length."""
    x = g.integers(1, VOCAB, size=(len(lengths), SEQ_LEN)).astype("int32")
    for row, n in zip(x, lengths):
        row[n:] = 0
    return x


def sequence():
    import keras

    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(SEQ_LEN,), dtype="int32"),
            L.Embedding(VOCAB, 8, mask_zero=True),
            L.Bidirectional(L.LSTM(6, return_sequences=True)),
            L.GRU(5),
            L.Dense(3, activation="softmax"),
        ],
        name="sequence",
    )
    g = rng(105)
    x = padded_ids(g, g.integers(1, SEQ_LEN + 1, size=512))
    # Which third of the vocabulary the last real id falls in: the label depends on where
    # the padding starts, so the masks matter.
    last = x[np.arange(len(x)), (x != 0).sum(axis=1) - 1]
    y = (last - 1) * 3 // (VOCAB - 1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    # Every length from full to one id, and a row of padding only (Keras 3: an RNN gives
    # zeros for a fully masked sequence).
    return model, padded_ids(g, [7, 5, 3, 1, 6, 2, 4, 0])


STREAM_BATCH, STREAM_FEATURES = 2, 3
# Consecutive `model(x)` calls on (STREAM_BATCH, timesteps, STREAM_FEATURES) chunks:
# (timesteps, whether every RNN layer's `reset_state()` runs first).
STREAM_CALLS = [(3, False), (1, False), (4, False), (2, True), (5, False), (3, True), (1, False)]


class StatefulCalls(list):
    """A stateful case's inputs: [(x chunk, reset_before)], called in order."""


def streaming():
    import keras

    L = keras.layers

    def build(inputs, stateful):
        return keras.Sequential(
            [
                inputs,
                L.LSTM(8, stateful=stateful, return_sequences=True),
                L.Dense(1),
            ],
            name="streaming",
        )

    g = rng(106)
    # Trained without state on fixed-length sequences (Keras's `fit` on a stateful model
    # needs every batch to hold exactly STREAM_BATCH samples); the target depends on the
    # whole past, a decaying sum of the first feature.
    trained = build(keras.Input(shape=(12, STREAM_FEATURES)), stateful=False)
    x = g.normal(0.0, 1.0, size=(256, 12, STREAM_FEATURES)).astype("float32")
    y = np.zeros((256, 12, 1), "float32")
    acc = np.zeros(256, "float32")
    for t in range(12):
        acc = 0.7 * acc + x[:, t, 0]
        y[:, t, 0] = np.tanh(acc) + 0.2 * x[:, t, 1]
    trained.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    trained.fit(x, y, epochs=5, batch_size=32, verbose=0)
    weights = trained.get_weights()
    # The same layers (same automatic names) with `stateful=True` on a fixed batch size and
    # any number of timesteps: the model that is saved and exported.
    keras.backend.clear_session()
    model = build(keras.Input(batch_shape=(STREAM_BATCH, None, STREAM_FEATURES)), stateful=True)
    model.set_weights(weights)
    calls = StatefulCalls(
        (g.normal(0.0, 1.0, size=(STREAM_BATCH, t, STREAM_FEATURES)).astype("float32"), reset)
        for t, reset in STREAM_CALLS
    )
    return model, calls


def reset_states(model):
    """Keras 3's `reset_states()`: every stateful layer's `reset_state()`."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def stateful_outputs(case, model, loaded, calls):
    """The saved model's outputs of the consecutive calls (`model(x)`: on the JAX backend
    `predict` runs without the state, measured), checked against the model that was saved
    and, per segment between resets, against one call on the concatenated chunks."""
    records = []
    for m in (loaded, model):
        reset_states(m)
        ys = []
        for x, reset in calls:
            if reset:
                reset_states(m)
            ys.append(np.asarray(m(x)))
        records.append(ys)
    ys, direct = records
    for a, b in zip(ys, direct):
        assert np.array_equal(a, b), f"{case}: the saved model's calls differ"
    segments, current = [], []
    for n, (_, reset) in enumerate(calls):
        if reset and current:
            segments.append(current)
            current = []
        current.append(n)
    segments.append(current)
    for seg in segments:
        reset_states(loaded)
        whole = np.asarray(loaded(np.concatenate([calls[n][0] for n in seg], axis=1)))
        chunks = np.concatenate([ys[n] for n in seg], axis=1)
        assert np.abs(whole - chunks).max() < 1e-5, f"{case}: chunks != the whole segment"
    reset_states(loaded)
    return [
        {"timesteps": int(x.shape[1]), "reset_before": reset, "x": floats(x), "y": floats(y)}
        for (x, reset), y in zip(calls, ys)
    ]


# case -> (Rust type name given to --name, builder returning the trained model and inputs)
CASES = {
    "mlp": ("Mlp", mlp),
    "activations": ("Activations", activations),
    "masked": ("Masked", masked),
    "normalization": ("Normalization", normalization),
    "sequence": ("SequenceClassifier", sequence),
    "streaming": ("StatefulLstm", streaming),
}


def normalise_keras_zip(path):
    """Rewrites a .keras zip with a fixed `date_saved`, renumbered `shared_object_id`s and
    fixed entry timestamps."""
    with zipfile.ZipFile(path) as z:
        entries = [(info.filename, z.read(info.filename)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if name == "metadata.json":
                meta = json.loads(data)
                meta["date_saved"] = "fixed by tools/make_import_fixtures.py"
                data = json.dumps(meta, sort_keys=True).encode()
            elif name == "config.json":
                data = json.dumps(renumber_shared_objects(json.loads(data))).encode()
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)


def renumber_shared_objects(config):
    """Keras links objects shared in a config by `shared_object_id`, the Python `id()` of the
    object when saved (a new number every run); renumbers them 1, 2, ... in order."""
    numbers = {}

    def walk(v):
        if isinstance(v, dict):
            return {
                k: numbers.setdefault(x, len(numbers) + 1) if k == "shared_object_id" else walk(x)
                for k, x in v.items()
            }
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(config)


def generate(case):
    import jax
    import keras
    import numpy as np

    type_name, build = CASES[case]
    # A fresh session per case: Keras's automatic names (`dense_1`) count per session, so a
    # case regenerated alone gets the same names as in a full run.
    keras.backend.clear_session()
    keras.utils.set_random_seed(1000 + sorted(CASES).index(case))
    model, x = build()
    out = FIXTURES / case
    out.mkdir(parents=True, exist_ok=True)
    keras_file = out / "model.keras"
    model.save(keras_file)
    normalise_keras_zip(keras_file)
    subprocess.run(
        [
            sys.executable,
            str(TOOLS / "keras_export.py"),
            str(keras_file),
            str(out),
            "--name",
            type_name,
        ],
        check=True,
    )

    loaded = keras.saving.load_model(keras_file, compile=False)
    if isinstance(x, StatefulCalls):
        calls = stateful_outputs(case, model, loaded, x)
    else:
        y = np.asarray(loaded.predict(x, batch_size=BATCH, verbose=0))
        direct = np.asarray(model.predict(x, batch_size=BATCH, verbose=0))
        assert np.array_equal(y, direct), f"{case}: the saved model predicts differently"

    from safetensors.numpy import load_file

    # Keras's variable paths without model names (computed here, not by keras_export.py,
    # so the Rust test checks the exporter against Keras): `dense/kernel`. From the model
    # as built, not as loaded: a loaded model's paths lack the wrappers' names
    # (`forward_lstm/lstm_cell/kernel` for `bidirectional/forward_lstm/lstm_cell/kernel`,
    # keras 3.15), so each loaded path must end the built one.
    model_names = {model.name, *nested_names(model)}
    names = []
    for v, w in zip(model.weights, loaded.weights):
        parts = v.path.split("/")
        while len(parts) > 2 and parts[0] in model_names:
            parts.pop(0)
        names.append("/".join(parts))
        assert ("/" + names[-1]).endswith("/" + w.path) or names[-1] == w.path, (v.path, w.path)
    stored = load_file(out / "weights.safetensors")
    assert sorted(stored) == sorted(names), f"{case}: {sorted(stored)} != {sorted(names)}"
    for v, name in zip(loaded.weights, names):
        assert stored[name].shape == tuple(v.shape) and stored[name].dtype == np.float32
        assert np.array_equal(stored[name], np.asarray(v.numpy())), f"{case}: {name} differs"

    data = {"name": case, "model": type_name}
    if not isinstance(x, StatefulCalls):
        data["input_shape"] = list(x.shape[1:])
        data["output_shape"] = list(y.shape[1:])
    data["weight_names"] = names
    data["keras_weight_paths"] = [v.path for v in loaded.weights]
    data["weight_shapes"] = [list(v.shape) for v in loaded.weights]
    if isinstance(x, StatefulCalls):
        data["batch_size"] = int(loaded.inputs[0].shape[0])
        data["features"] = int(loaded.inputs[0].shape[-1])
        data["calls"] = calls
    else:
        data["batch"] = BATCH
        data["x"] = floats(x)
        data["y"] = floats(y)
    data["_generator"] = {
        "script": "tools/make_import_fixtures.py",
        "keras": keras.__version__,
        "jax": jax.__version__,
        "backend": keras.backend.backend(),
    }
    with open(out / "cases.json", "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")
    files = "model.keras, model.rs, weights.safetensors, cases.json"
    print(f"wrote {out.relative_to(ROOT)}/ ({files})")


def nested_names(model):
    """Names of the models nested in `model`, outermost first."""
    import keras

    names = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            names += [layer.name] + nested_names(layer)
    return names


def main(argv):
    names = argv or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; cases: {', '.join(CASES)}")
    import keras

    assert keras.backend.backend() == "jax", "the fixtures must come from the JAX backend"
    for name in names:
        generate(name)


if __name__ == "__main__":
    main(sys.argv[1:])
