"""Streaming and variable-length sequences: Keras's whole-sequence outputs, which kiln's
`Streaming::step`, `predict_sequence` and `predict_chunk` must reproduce one timestep at a
time.

Every case is a keras.Sequential model (a fresh session each, so layer names restart) on
`keras.Input(shape=(None, features))` unless `fixed` says otherwise, weights set from a
seeded generator and stored under their Keras 3 paths relative to the model. Stored per
case:
- `sequences`: several input sequences of different lengths (`x`, row-major
  `(timesteps, features)`, and `timesteps`), each with `y`, `model.predict` on that one
  sequence (batch of 1): every timestep's output with `return_sequences = True`, the last
  output (through the layers after it) otherwise.

Masked inputs hold whole zero timesteps (leading, inner, trailing), masked by `Masking`:
Keras 3 keeps an RNN's state and repeats its previous output at a masked step.

`stateful` cases are `stateful = True` models on `keras.Input(batch_shape=(1, None, f))`:
`chunks` are consecutive calls without `reset_state`, each chunk's `x` and `y`, which
kiln's `predict_chunk` with one state carried across the calls must give (and which equal
one call on the chunks' concatenation, checked here).
"""
import keras
import numpy as np

from oracle._util import floats, rng

L = keras.layers


def path(v):
    """`sequential/lstm/lstm_cell/kernel` -> `lstm/lstm_cell/kernel`."""
    return v.path.split("/", 1)[1]


def set_weights(model, g):
    weights = {}
    for v in model.weights:
        value = g.uniform(-0.7, 0.7, size=tuple(v.shape)).astype(np.float32)
        v.assign(value)
        weights[path(v)] = {"shape": list(v.shape), "values": floats(value)}
    return weights


def sequence(g, steps, features, masked=()):
    x = g.normal(0.0, 1.0, size=(steps, features)).astype(np.float32)
    for t in masked:
        x[t, :] = 0.0
    return x


# name -> (layers, features, [(timesteps, masked steps)], fixed timesteps or None)
CASES = {
    "lstm_seq_dense": (
        lambda: [L.LSTM(4, return_sequences=True), L.Dense(3)],
        2,
        [(7, ()), (1, ()), (12, ())],
        None,
    ),
    "gru_seq_dense_tanh": (
        lambda: [L.GRU(4, return_sequences=True), L.Dense(2, activation="tanh")],
        3,
        [(6, ()), (9, ())],
        None,
    ),
    "gru_reset_before_seq": (
        lambda: [L.GRU(3, reset_after=False, return_sequences=True)],
        2,
        [(5, ())],
        None,
    ),
    "masking_gru_seq_dense": (
        lambda: [L.Masking(), L.GRU(4, return_sequences=True), L.Dense(2)],
        3,
        [(8, (0, 3, 4, 7)), (5, (2,)), (3, (0, 1, 2))],
        None,
    ),
    "masking_lstm_seq_relu": (
        lambda: [
            L.Masking(mask_value=0.0),
            L.LSTM(3, return_sequences=True),
            L.ReLU(),
            L.Dense(2),
        ],
        2,
        [(7, (1, 2, 6))],
        None,
    ),
    "simple_rnn_lstm_stack_chain": (
        lambda: [
            L.SimpleRNN(5, return_sequences=True),
            L.Dropout(0.3),
            L.LSTM(4, return_sequences=True),
            L.LeakyReLU(negative_slope=0.2),
            L.ELU(),
            L.Activation("sigmoid"),
            L.ActivityRegularization(l1=0.01),
        ],
        2,
        [(6, ()), (10, ())],
        None,
    ),
    "lstm_last_dense_softmax": (
        lambda: [L.Masking(), L.LSTM(4), L.Dense(3, activation="softmax")],
        2,
        [(6, (5,)), (4, (0,)), (9, ())],
        None,
    ),
    "gru_stack_last": (
        lambda: [
            L.GRU(4, return_sequences=True),
            L.GRU(3, reset_after=False),
            L.Dense(2),
        ],
        2,
        [(5, ()), (8, ())],
        None,
    ),
    "fixed_lstm_seq_dense": (
        lambda: [L.LSTM(3, return_sequences=True), L.Dense(2)],
        2,
        [(6, ())],
        6,
    ),
}

# name -> (layers, features, chunk lengths)
STATEFUL = {
    "stateful_lstm_seq": (
        lambda: [L.LSTM(4, stateful=True, return_sequences=True), L.Dense(2)],
        2,
        [3, 4, 1, 2],
    ),
    "stateful_gru_last": (
        lambda: [L.GRU(3, stateful=True), L.Dense(2)],
        2,
        [3, 5, 2],
    ),
}


# name -> (input, layers, calls); each call `(timesteps, reset_before)` on a batch of
# sequences, `reset_before` calling every layer's `reset_state()` first (Keras 3's
# `model.reset_states()`); `ids` cases feed integer ids (0 = masked by `mask_zero`).
STATEFUL_BATCHES = {
    "stateful_batch_lstm_seq": (
        lambda: keras.Input(batch_shape=(2, None, 2)),
        lambda: [L.LSTM(4, stateful=True, return_sequences=True), L.Dense(2)],
        [(3, False), (2, False), (4, True), (1, False)],
    ),
    "stateful_batch_gru_fixed": (
        lambda: keras.Input(shape=(3, 2), batch_size=3),
        lambda: [L.GRU(3, stateful=True), L.Dense(2)],
        [(3, False), (3, False), (3, True)],
    ),
    "stateful_batch_embedding_masked": (
        lambda: keras.Input(batch_shape=(2, None), dtype="int32"),
        lambda: [
            L.Embedding(5, 3, mask_zero=True),
            L.SimpleRNN(4, stateful=True, return_sequences=True),
            L.Dense(2),
        ],
        [(4, False), (3, False)],
    ),
}


def stateful_batches():
    """Keras's calls of stateful models on batches: each row carries its own state."""
    cases = []
    for n, (name, (inp, layers, calls)) in enumerate(STATEFUL_BATCHES.items()):
        keras.backend.clear_session()
        g = rng(600 + n)
        model = keras.Sequential([inp()] + layers())
        weights = set_weights(model, g)
        batch, features = model.inputs[0].shape[0], model.inputs[0].shape[-1]
        ids = len(model.inputs[0].shape) == 2
        records = []
        for steps, reset_before in calls:
            if reset_before:
                for layer in model.layers:
                    if hasattr(layer, "reset_state"):
                        layer.reset_state()
            if ids:
                x = g.integers(0, 5, size=(batch, steps)).astype(np.int32)
                x[0, 1] = 0  # a masked step inside the first sequence
            else:
                x = g.normal(0.0, 1.0, size=(batch, steps, features)).astype(np.float32)
            # `model(x)`: on JAX only the call carries `stateful` state (see above).
            y = np.asarray(model(x))
            records.append(
                {
                    "timesteps": steps,
                    "reset_before": reset_before,
                    "x": floats(x.astype(np.float32)),
                    "y": floats(y),
                }
            )
        cases.append(
            {
                "name": name,
                "batch_size": batch,
                "weights": weights,
                "calls": records,
            }
        )
    return cases


def generate():
    out = {"cases": [], "stateful": [], "stateful_batches": stateful_batches()}
    for n, (name, (layers, features, seqs, fixed)) in enumerate(CASES.items()):
        keras.backend.clear_session()
        g = rng(400 + n)
        model = keras.Sequential(
            [keras.Input(shape=(fixed, features))] + layers()
        )
        weights = set_weights(model, g)
        sequences = []
        for steps, masked in seqs:
            x = sequence(g, steps, features, masked)
            y = np.asarray(model.predict(x[None], verbose=0))[0]
            sequences.append({"timesteps": steps, "x": floats(x), "y": floats(y)})
        out["cases"].append(
            {
                "name": name,
                "features": features,
                "weights": weights,
                "sequences": sequences,
            }
        )
    for n, (name, (layers, features, chunks)) in enumerate(STATEFUL.items()):
        keras.backend.clear_session()
        g = rng(500 + n)
        model = keras.Sequential([keras.Input(batch_shape=(1, None, features))] + layers())
        weights = set_weights(model, g)
        records = []
        for steps in chunks:
            x = sequence(g, steps, features)
            # `model(x)`, not `predict`: on the JAX backend `predict` and `predict_on_batch`
            # run stateless and leave the `rnn_state` variables at zeros (each chunk starts
            # afresh), while the call carries the state as `stateful = True` documents.
            y = np.asarray(model(x[None]))[0]
            records.append({"timesteps": steps, "x": floats(x), "y": floats(y)})
        whole = np.concatenate(
            [np.asarray(r["x"], np.float32).reshape(r["timesteps"], features) for r in records]
        )
        for layer in model.layers:
            if hasattr(layer, "reset_state"):
                layer.reset_state()
        carried = np.asarray(model(whole[None]))[0]
        if records and len(np.asarray(records[0]["y"])) != carried.size:
            # return_sequences: the chunks' rows are the whole sequence's rows.
            rows = np.concatenate([np.asarray(r["y"], np.float32) for r in records])
            assert np.abs(rows - carried.reshape(-1)).max() < 1e-5
        else:
            assert np.abs(np.asarray(records[-1]["y"], np.float32) - carried.reshape(-1)).max() < 1e-5
        out["stateful"].append(
            {"name": name, "features": features, "weights": weights, "chunks": records}
        )
    return out
