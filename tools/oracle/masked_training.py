"""Training a model whose output carries a Keras mask: the loss, the metrics and the
weights after `train_on_batch`, after a short `fit` (shuffle=False, with validation data)
and from `evaluate`.

Keras 3 (`keras/src/losses/loss.py`, `apply_mask`) turns the output mask into a sample
weight per output position: `total / valid` on the unmasked positions and 0 on the masked
ones (combined with any `sample_weight` by multiplying), so the `"sum_over_batch_size"`
loss is `sum(loss * sample_weight) / valid`, and 0 when every position of the batch is
masked (`divide_no_nan`). The metrics (`MeanMetricWrapper.update_state`) take the mask as
a 0/1 weight. `fit` and `evaluate` average the batches' losses weighted by their sizes, so
the batch size matters: `fit` validates in batches of its `batch_size`, `evaluate` in
batches of 32.

Two models, each with and without `sample_weight`:
- `lstm`: Masking -> LSTM(4, return_sequences) -> Dense(2), mean squared error, SGD(0.1),
  metrics accuracy and mae; all-zero timesteps (leading, inner and trailing) are masked, and
  one sample is all zeros (fully masked);
- `gru`: Embedding(10, 4, mask_zero) -> GRU(5, return_sequences) -> TimeDistributed(Dense(3))
  -> Activation(softmax), sparse categorical cross-entropy, Adam(0.01), metric accuracy;
  id 0 is masked, and one sample is all zeros.

kiln's `sample_weight` holds one weight per sample, applied to each of its output rows:
Keras 3 refuses a `(batch,)` weight for a sequence output (it broadcasts `(batch,)` against
the `(batch, steps)` losses and fails), so the oracle gives Keras the same weights shaped
`(batch, 1)`, which weight every timestep of their sample.

Per case: the start weights (under their Keras 3 paths relative to the model), the data,
`train_on_batch` on the whole training set (loss, metrics, weights after; with
`sample_weight` given to it), a fresh start trained by `fit(batch_size=3, epochs=2,
shuffle=False, validation_data=...)` (history and weights after), `evaluate` of that
trained model on 40 samples (two batches of 32 and 8), and `train_on_batch` on a batch
whose every position is masked (loss 0, weights unchanged).
"""
import keras
import numpy as np

from oracle._util import floats, rng

L = keras.layers


def path(v):
    """`sequential/lstm/lstm_cell/kernel` -> `lstm/lstm_cell/kernel`."""
    return v.path.split("/", 1)[1]


def lstm_model():
    return keras.Sequential(
        [
            keras.Input((5, 3)),
            L.Masking(),
            L.LSTM(4, return_sequences=True),
            L.Dense(2),
        ]
    )


def gru_model():
    return keras.Sequential(
        [
            keras.Input((6,)),
            L.Embedding(10, 4, mask_zero=True),
            L.GRU(5, return_sequences=True),
            L.TimeDistributed(L.Dense(3)),
            L.Activation("softmax"),
        ]
    )


def lstm_data(g, n):
    """Normal values with all-zero timesteps; sample 2 all zeros."""
    x = g.normal(0.0, 1.0, size=(n, 5, 3)).astype(np.float32)
    for b in range(n):
        x[b, (b + 1) % 5, :] = 0.0
        if b % 2 == 0:
            x[b, 0, :] = 0.0
        if b % 3 == 0:
            x[b, 3:, :] = 0.0
    x[2] = 0.0
    y = g.normal(0.0, 1.0, size=(n, 5, 2)).astype(np.float32)
    return x, y


def gru_data(g, n):
    """Ids 1..9 with zeros (trailing padding and inner); sample 2 all zeros."""
    x = g.integers(1, 10, size=(n, 6)).astype(np.float32)
    for b in range(n):
        pad = b % 4
        if pad:
            x[b, 6 - pad :] = 0.0
        if b % 3 == 1:
            x[b, 1] = 0.0
    x[2] = 0.0
    y = g.integers(0, 3, size=(n, 6)).astype(np.float32)
    return x, y


MODELS = {
    "lstm": (lstm_model, lstm_data, "mse", ["accuracy", "mae"], lambda: keras.optimizers.SGD(0.1)),
    "gru": (
        gru_model,
        gru_data,
        "sparse_categorical_crossentropy",
        ["accuracy"],
        lambda: keras.optimizers.Adam(0.01),
    ),
}


def build(kind, start):
    keras.backend.clear_session()
    make, _, loss, metrics, optimizer = MODELS[kind]
    model = make()
    for v in model.weights:
        v.assign(np.asarray(start[path(v)], dtype=np.float32).reshape(tuple(v.shape)))
    model.compile(optimizer(), loss, metrics=metrics)
    return model


def weights_of(model):
    return {path(v): floats(np.asarray(v)) for v in model.weights}


def logs(d):
    return {k: float(v) for k, v in d.items()}


def case(kind, seed, weighted):
    g = rng(seed)
    make, data, loss, metrics, _ = MODELS[kind]
    keras.backend.clear_session()
    model = make()
    start = {}
    for v in model.weights:
        value = g.uniform(-0.6, 0.6, size=tuple(v.shape)).astype(np.float32)
        start[path(v)] = value
    x, y = data(g, 8)
    xv, yv = data(g, 7)
    xe, ye = data(g, 40)
    sw = g.uniform(0.2, 2.0, size=(8, 1)).astype(np.float32) if weighted else None
    x_masked = np.zeros_like(x[:4])
    y_masked = y[:4]

    model = build(kind, start)
    train = model.train_on_batch(x, y, sample_weight=sw, return_dict=True)
    train_after = weights_of(model)

    model = build(kind, start)
    history = model.fit(
        x,
        y,
        sample_weight=sw,
        batch_size=3,
        epochs=2,
        shuffle=False,
        validation_data=(xv, yv),
        verbose=0,
    )
    fit_after = weights_of(model)
    evaluate = model.evaluate(xe, ye, verbose=0, return_dict=True)

    model = build(kind, start)
    masked = model.train_on_batch(x_masked, y_masked, return_dict=True)
    masked_after = weights_of(model)

    out = {
        "name": f"{kind}{'_weighted' if weighted else ''}",
        "model": kind,
        "loss": loss,
        "metrics": metrics,
        "weights": {k: floats(v) for k, v in start.items()},
        "x": floats(x),
        "y": floats(y),
        "x_val": floats(xv),
        "y_val": floats(yv),
        "x_eval": floats(xe),
        "y_eval": floats(ye),
        "train": {"logs": logs(train), "after": train_after},
        "fit": {
            "batch_size": 3,
            "epochs": 2,
            "history": {k: floats(v) for k, v in history.history.items()},
            "after": fit_after,
        },
        "evaluate": logs(evaluate),
        "all_masked": {
            "x": floats(x_masked),
            "y": floats(y_masked),
            "logs": logs(masked),
            "after": masked_after,
        },
    }
    if weighted:
        out["sample_weight"] = floats(sw)
    return out


def generate():
    return {
        "cases": [
            case("lstm", 21, False),
            case("lstm", 22, True),
            case("gru", 23, False),
            case("gru", 24, True),
        ]
    }
