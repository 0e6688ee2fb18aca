"""Streaming for the layers beyond the recurrent ones: causal `Conv1D` (dilated, grouped)
and `Conv1D` with a one-timestep kernel, `LayerNormalization` and `Softmax` on the last
axis, `PReLU(shared_axes = [1])`, `Embedding` first (with and without `mask_zero`) and
`TimeDistributed` around per-timestep layers. Keras's whole-sequence outputs, which kiln's
`Streaming::step` and `predict_sequence` must reproduce one timestep at a time.

Same layout and conventions as `streaming.py` (whose helpers this reuses): every case is a
keras.Sequential model (a fresh session each, so layer names restart) on
`keras.Input(shape=(None, features))` — `(None,)` for ids — unless `fixed` gives the
timesteps, weights from a seeded generator under their Keras 3 paths relative to the model,
and per case `sequences`: input sequences of several lengths (`x` row-major, `timesteps`),
each with `y`, `model.predict` on that one sequence (batch of 1).

Fixed-length cases matter here: with `Input(shape = (None, f))` kiln builds each layer for
one timestep, while a fixed `(T, f)` model streams layers built for `T` timesteps, whose
one-timestep form must still act on a single timestep.

`Softmax` after `Masking`: Keras 3's `Softmax.call` cannot broadcast a Sequential's
`(batch, timesteps)` mask against `(batch, timesteps, units)` and raises, so the case
`masking_lstm_softmax` takes the model up to the layer before `Softmax` and calls
`Softmax()(h, mask=mask[..., None])`, the mask being Keras's own `Masking.compute_mask` —
the meaning kiln gives a mask arriving at `Softmax` (see macros/src/layers/softmax.rs).
"""
import keras
import numpy as np

from oracle._util import floats, rng
from oracle.streaming import sequence, set_weights

L = keras.layers


def ids(g, steps, input_dim, zeros=()):
    """`steps` ids in `1..input_dim`, with id 0 at `zeros` (masked with `mask_zero`)."""
    x = g.integers(1, input_dim, size=(steps,)).astype(np.float32)
    for t in zeros:
        x[t] = 0.0
    return x


# name -> (layers, features (None for ids), [(timesteps, masked or zero-id steps)],
#          fixed timesteps or None)
CASES = {
    "causal_conv_dilated_lstm_dense": (
        lambda: [
            L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
            L.LSTM(5, return_sequences=True),
            L.Dense(2),
        ],
        3,
        [(9, ()), (1, ()), (14, ())],
        None,
    ),
    "causal_conv_groups_pointwise": (
        lambda: [
            L.Conv1D(6, 2, padding="causal", groups=3, activation="tanh"),
            L.Conv1D(4, 1, padding="same", use_bias=False),
            L.Conv1D(3, 1, activation="sigmoid"),
        ],
        3,
        [(7, ()), (2, ())],
        None,
    ),
    "fixed_causal_conv_gru": (
        lambda: [
            L.Conv1D(3, 4, padding="causal"),
            L.Conv1D(2, 2, padding="causal", dilation_rate=3, groups=1, use_bias=False),
            L.GRU(3, return_sequences=True),
        ],
        2,
        [(8, ())],
        8,
    ),
    "lstm_layer_norm_prelu_softmax": (
        lambda: [
            L.LSTM(4, return_sequences=True),
            L.LayerNormalization(epsilon=1e-2),
            L.PReLU(shared_axes=[1]),
            L.Dense(3),
            L.Softmax(),
        ],
        2,
        [(6, ()), (11, ())],
        None,
    ),
    "fixed_dense_layer_norm_prelu_softmax": (
        lambda: [
            L.Dense(4),
            L.LayerNormalization(center=False),
            L.PReLU(shared_axes=[1]),
            L.PReLU(shared_axes=[1, 2]),
            L.Softmax(axis=-1),
        ],
        3,
        [(5, ())],
        5,
    ),
    "lstm_last_layer_norm_prelu": (
        lambda: [
            L.LSTM(4),
            L.LayerNormalization(),
            L.PReLU(),
            L.Dense(2),
        ],
        2,
        [(5, ()), (3, ())],
        None,
    ),
    "embedding_mask_lstm_seq": (
        lambda: [
            L.Embedding(10, 4, mask_zero=True),
            L.LSTM(3, return_sequences=True),
            L.Dense(2),
        ],
        None,
        [(8, (0, 3, 4)), (5, ()), (4, (3,))],
        None,
    ),
    "embedding_gru_last": (
        lambda: [L.Embedding(7, 3), L.GRU(4), L.Dense(2, activation="softmax")],
        None,
        [(6, (2,)), (1, ())],
        None,
    ),
    "time_distributed_dense_gru_norm": (
        lambda: [
            L.TimeDistributed(L.Dense(3, activation="relu")),
            L.GRU(4, return_sequences=True),
            L.TimeDistributed(L.LayerNormalization()),
            L.TimeDistributed(L.Dense(2)),
        ],
        2,
        [(6, ()), (3, ())],
        None,
    ),
    "masking_lstm_softmax": (
        lambda: [L.Masking(), L.LSTM(3, return_sequences=True)],
        2,
        [(7, (0, 3, 6)), (4, ())],
        None,
    ),
}

# Cases whose last layer, a `Softmax`, is called on the model's output with the mask.
MASKED_SOFTMAX = {"masking_lstm_softmax"}


def generate():
    out = {"cases": []}
    for n, (name, (layers, features, seqs, fixed)) in enumerate(CASES.items()):
        keras.backend.clear_session()
        g = rng(600 + n)
        shape = (fixed,) if features is None else (fixed, features)
        model = keras.Sequential([keras.Input(shape=shape)] + layers())
        weights = set_weights(model, g)
        sequences = []
        for steps, marked in seqs:
            if features is None:
                input_dim = model.layers[0].input_dim
                x = ids(g, steps, input_dim, marked)
            else:
                x = sequence(g, steps, features, marked)
            y = model.predict(x[None], verbose=0)
            if name in MASKED_SOFTMAX:
                mask = model.layers[0].compute_mask(x[None])
                y = L.Softmax()(y, mask=mask[..., None])
            sequences.append(
                {"timesteps": steps, "x": floats(x), "y": floats(np.asarray(y)[0])}
            )
        out["cases"].append(
            {
                "name": name,
                "features": 1 if features is None else features,
                "weights": weights,
                "sequences": sequences,
            }
        )
    return out
