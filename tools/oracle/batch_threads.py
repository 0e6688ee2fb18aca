"""Batches large enough that `predict_batch` splits them across threads: a Dense model, a
convolutional model and a masked recurrent model, 37 samples each.

Every case is a keras.Sequential model (a fresh session each, so layer names restart)
whose weights are set from a seeded generator and stored under their Keras 3 paths. Stored
per case:
- `y`: `model.predict(x, batch_size=8)`: Keras's own predict runs the batch in pieces of 8
  (the last one 5 samples), and the oracle checks that this matches `model(x)` on the whole
  batch, so a row's output does not depend on the rows around it in Keras either;
- `mask`: the Keras mask on the output of `model(x)` when there is one, as 0/1.

tests/batch_threads.rs checks kiln's `predict_batch` against `y` on one and several threads,
and that each split gives every row the bits the one-thread pass gives it.
"""
import keras
import numpy as np
from keras.src.backend.common.masking import get_keras_mask

from oracle._util import floats, rng

L = keras.layers
BATCH = 37


def path(model, v):
    """`sequential/lstm/lstm_cell/kernel` -> `lstm/lstm_cell/kernel`."""
    return v.path.split("/", 1)[1]


def masked_sequences(g, batch, steps, features):
    """Normal values with whole zero timesteps (leading, inner, trailing) and the last sample
    all zeros."""
    x = g.normal(0.0, 1.0, size=(batch, steps, features)).astype(np.float32)
    for b in range(batch):
        x[b, (b + 1) % steps, :] = 0.0
        if b % 2 == 0:
            x[b, 0, :] = 0.0
            x[b, steps - 1, :] = 0.0
    x[batch - 1] = 0.0
    return x


def model_case(name, input_shape, layers, seed, x=None):
    g = rng(seed)
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers())
    weights = {}
    for v in model.weights:
        value = g.uniform(-0.5, 0.5, size=tuple(v.shape)).astype(np.float32)
        v.assign(value)
        weights[path(model, v)] = {"shape": list(v.shape), "values": floats(value)}
    if x is None:
        x = g.normal(0.0, 1.0, size=(BATCH,) + tuple(input_shape)).astype(np.float32)
    out = model(x)
    y = model.predict(x, batch_size=8, verbose=0)
    np.testing.assert_allclose(y, np.asarray(out), rtol=1e-5, atol=1e-6)
    case = {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weight_names": [path(model, v) for v in model.weights],
        "weights": weights,
        "batch": BATCH,
        "x": floats(x),
        "y": floats(y),
    }
    mask = get_keras_mask(out)
    if mask is not None:
        case["mask"] = [int(v) for v in np.asarray(mask).reshape(-1)]
    return case


def generate():
    g = rng(11)
    return {
        "cases": [
            model_case(
                "dense",
                (300,),
                lambda: [
                    L.Dense(64, activation="relu"),
                    L.Dense(40, activation="tanh"),
                    L.Dense(5, activation="softmax"),
                ],
                1,
            ),
            model_case(
                "conv",
                (10, 10, 3),
                lambda: [
                    L.Conv2D(8, 3, activation="relu"),
                    L.Conv2D(6, 3, strides=2, padding="same"),
                    L.MaxPooling2D(),
                    L.Flatten(),
                    L.Dense(64, activation="relu"),
                    L.Dense(40),
                ],
                2,
            ),
            model_case(
                "masked_rnn",
                (7, 5),
                lambda: [
                    L.Masking(),
                    L.LSTM(8, return_sequences=True),
                    L.GRU(6, return_sequences=True),
                    L.Dense(3),
                ],
                3,
                x=masked_sequences(g, BATCH, 7, 5),
            ),
        ]
    }
