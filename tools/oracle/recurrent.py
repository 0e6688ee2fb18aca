"""Embedding, SimpleRNN, LSTM and GRU: outputs, masks and `jax.grad` gradients.

Every case is a keras.Sequential model (a fresh session each, so layer names restart)
whose weights are set from a seeded generator and stored under their Keras 3 paths relative
to the model (`lstm/lstm_cell/kernel`: the cell's variables live under `<layer>/<cell>`).
Stored per case:
- `y`: `model(x)` in inference;
- `mask`: the Keras mask on the output when there is one (`return_sequences` passes the
  input's mask on), as 0/1;
- `t` and `grads` (training cases): `jax.grad` with respect to every weight of
  `sum((y - t)^2) / (2 * batch) + sum(losses)` in inference mode (no dropout).

`steps` holds `train_on_batch` runs: an Embedding(mask_zero) -> LSTM -> softmax model with
categorical cross-entropy and a Masking -> GRU -> GRU -> Dense model with mean squared
error, each with SGD(0.1) and Adam(0.01), two steps: the loss each step returns and every
weight after it.

Also writes tests/data/baked/recurrent_*.safetensors: the weights of three cases
(`embedding_mask_lstm`, `lstm_gru_stack`, `masking_simple_rnn_seq_lstm`), which
tests/recurrent.rs bakes into models with `#[weights = ...]`.

Masked inputs hold all-zero timesteps (masked by `Masking`), one fully masked sample, and
Embedding ids with zeros (masked with `mask_zero = True`): Keras 3 keeps the state and the
previous output at a masked step, so a fully masked sequence outputs zeros.
"""
import pathlib

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras.src.backend.common.masking import get_keras_mask

from oracle._util import floats, rng

L = keras.layers


def path(model, v):
    """A variable's path relative to the model: `sequential/lstm/lstm_cell/kernel` ->
    `lstm/lstm_cell/kernel`."""
    return v.path.split("/", 1)[1]


def set_weights(model, g):
    weights = {}
    for v in model.weights:
        value = g.uniform(-0.8, 0.8, size=tuple(v.shape)).astype(np.float32)
        v.assign(value)
        weights[path(model, v)] = {"shape": list(v.shape), "values": floats(value)}
    return weights


def gradients(model, x, t):
    trainable = [v.value for v in model.trainable_variables]
    others = [v.value for v in model.non_trainable_variables]
    n = x.shape[0]

    def loss(tv):
        y, _, losses = model.stateless_call(tv, others, x, training=False, return_losses=True)
        total = jnp.sum((y - t) ** 2) / (2.0 * n)
        for extra in losses:
            total = total + extra
        return total

    grads = jax.grad(loss)(trainable)
    names = [path(model, v) for v in model.trainable_variables]
    return {name: floats(np.asarray(gr)) for name, gr in zip(names, grads)}


def masked_sequences(g, batch, steps, features):
    """Normal values with whole zero timesteps (leading, inner and trailing) and, with three
    or more samples, the last sample all zeros."""
    x = g.normal(0.0, 1.0, size=(batch, steps, features)).astype(np.float32)
    for b in range(batch):
        x[b, (b + 1) % steps, :] = 0.0
        if b % 2 == 0:
            x[b, 0, :] = 0.0
            x[b, steps - 1, :] = 0.0
    if batch > 2:
        x[batch - 1] = 0.0
    return x


def ids(g, batch, steps, vocab, zeros=True):
    x = g.integers(1, vocab, size=(batch, steps)).astype(np.float32)
    if zeros:
        for b in range(batch):
            x[b, (b + 2) % steps] = 0.0
            if b % 2 == 1:
                x[b, steps - 2 :] = 0.0  # padding at the end
        x[batch - 1] = 0.0
    return x


def model_case(name, input_shape, layers, batch, seed, x=None, train=True):
    g = rng(seed)
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers())
    weights = set_weights(model, g)
    if x is None:
        x = g.normal(0.0, 1.0, size=(batch,) + tuple(input_shape)).astype(np.float32)
    out = model(x)
    y = np.asarray(out)
    case = {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weight_names": [path(model, v) for v in model.weights],
        "weights": weights,
        "batch": batch,
        "x": floats(x),
        "y": floats(y),
    }
    mask = get_keras_mask(out)
    if mask is not None:
        case["mask"] = [int(v) for v in np.asarray(mask).reshape(-1)]
    if train:
        t = g.uniform(-1.0, 1.0, size=y.shape).astype(np.float32)
        case["t"] = floats(t)
        case["grads"] = gradients(model, jnp.asarray(x), jnp.asarray(t))
    return case


def generate():
    g = rng(900)
    cases = [
        model_case("simple_rnn", (5, 3), lambda: [L.SimpleRNN(4)], 3, 901),
        model_case(
            "simple_rnn_seq_relu",
            (5, 3),
            lambda: [L.SimpleRNN(4, activation="relu", return_sequences=True)],
            3,
            902,
        ),
        model_case(
            "simple_rnn_backwards_no_bias",
            (4, 2),
            lambda: [L.SimpleRNN(3, use_bias=False, go_backwards=True)],
            3,
            903,
        ),
        model_case("lstm", (5, 3), lambda: [L.LSTM(4)], 3, 911),
        model_case(
            "lstm_seq_backwards",
            (5, 3),
            lambda: [L.LSTM(4, return_sequences=True, go_backwards=True)],
            3,
            912,
        ),
        model_case(
            "lstm_no_bias_activations",
            (4, 3),
            lambda: [
                L.LSTM(3, use_bias=False, activation="relu", recurrent_activation="hard_sigmoid")
            ],
            3,
            913,
        ),
        model_case("gru", (5, 3), lambda: [L.GRU(4)], 3, 921),
        model_case(
            "gru_reset_before_seq",
            (5, 3),
            lambda: [L.GRU(4, reset_after=False, return_sequences=True)],
            3,
            922,
        ),
        model_case(
            "gru_backwards_no_bias_softsign",
            (4, 2),
            lambda: [L.GRU(3, use_bias=False, go_backwards=True, activation="softsign")],
            3,
            923,
        ),
        model_case(
            "gru_reset_before_backwards_seq",
            (4, 2),
            lambda: [L.GRU(3, reset_after=False, go_backwards=True, return_sequences=True)],
            2,
            924,
        ),
        model_case(
            "lstm_gru_stack",
            (6, 2),
            lambda: [L.LSTM(4, return_sequences=True), L.GRU(3)],
            3,
            931,
        ),
        model_case(
            "masking_lstm",
            (6, 3),
            lambda: [L.Masking(), L.LSTM(4)],
            4,
            941,
            x=masked_sequences(g, 4, 6, 3),
        ),
        model_case(
            "masking_lstm_seq_backwards",
            (6, 3),
            lambda: [L.Masking(), L.LSTM(3, return_sequences=True, go_backwards=True)],
            4,
            942,
            x=masked_sequences(g, 4, 6, 3),
        ),
        model_case(
            "masking_gru_seq_dense",
            (6, 3),
            lambda: [L.Masking(), L.GRU(3, return_sequences=True), L.Dense(2)],
            4,
            943,
            x=masked_sequences(g, 4, 6, 3),
        ),
        model_case(
            "masking_gru_reset_before",
            (6, 3),
            lambda: [L.Masking(), L.GRU(3, reset_after=False)],
            4,
            944,
            x=masked_sequences(g, 4, 6, 3),
        ),
        model_case(
            "masking_simple_rnn_seq_lstm",
            (6, 3),
            lambda: [L.Masking(), L.SimpleRNN(4, return_sequences=True), L.LSTM(2)],
            4,
            945,
            x=masked_sequences(g, 4, 6, 3),
        ),
        model_case(
            "embedding",
            (6,),
            lambda: [L.Embedding(10, 4)],
            3,
            951,
            x=ids(g, 3, 6, 10, zeros=False),
        ),
        model_case(
            "embedding_mask_lstm",
            (7,),
            lambda: [L.Embedding(12, 4, mask_zero=True), L.LSTM(3)],
            4,
            952,
            x=ids(g, 4, 7, 12),
        ),
        model_case(
            "embedding_mask_gru_seq",
            (7,),
            lambda: [L.Embedding(12, 3, mask_zero=True), L.GRU(3, return_sequences=True)],
            4,
            953,
            x=ids(g, 4, 7, 12),
        ),
        model_case(
            "embedding_mask_simple_rnn_backwards",
            (5,),
            lambda: [L.Embedding(8, 3, mask_zero=True), L.SimpleRNN(2, go_backwards=True)],
            4,
            954,
            x=ids(g, 4, 5, 8),
        ),
    ]
    # The notes' example as written (Keras's Masking docs): 10 timesteps of 8 features,
    # timesteps 3 and 5 all zeros, Masking then LSTM(32).
    gn = rng(960)
    notes_x = gn.random([4, 10, 8]).astype(np.float32)
    notes_x[:, 3, :] = 0.0
    notes_x[:, 5, :] = 0.0
    cases.append(
        model_case(
            "notes_masking_lstm",
            (10, 8),
            lambda: [L.Masking(mask_value=0.0), L.LSTM(32)],
            4,
            961,
            x=notes_x,
        )
    )
    steps = [
        steps_case("lstm_sgd", "lstm", keras.optimizers.SGD(learning_rate=0.1), 971),
        steps_case("lstm_adam", "lstm", keras.optimizers.Adam(learning_rate=0.01), 971),
        steps_case("gru_sgd", "gru", keras.optimizers.SGD(learning_rate=0.1), 972),
        steps_case("gru_adam", "gru", keras.optimizers.Adam(learning_rate=0.01), 972),
    ]
    for c in cases:
        if c["name"] in BAKED:
            write_baked(c)
    return {"cases": cases, "steps": steps}


BAKED = ("embedding_mask_lstm", "lstm_gru_stack", "masking_simple_rnn_seq_lstm")


def write_baked(case):
    from safetensors.numpy import save_file

    path = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "baked"
    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: np.asarray(spec["values"], dtype=np.float32).reshape(spec["shape"])
        for name, spec in case["weights"].items()
    }
    save_file(tensors, str(path / f"recurrent_{case['name']}.safetensors"))


def steps_case(name, kind, optimizer, seed, steps=2):
    g = rng(seed)
    keras.backend.clear_session()
    if kind == "lstm":
        model = keras.Sequential(
            [
                keras.Input(shape=(7,)),
                L.Embedding(12, 4, mask_zero=True),
                L.LSTM(5),
                L.Dense(3, activation="softmax"),
            ]
        )
        x = ids(g, 6, 7, 12)
        y = np.eye(3, dtype=np.float32)[g.integers(0, 3, size=6)]
        loss = "categorical_crossentropy"
    else:
        model = keras.Sequential(
            [
                keras.Input(shape=(6, 3)),
                L.Masking(),
                L.GRU(4, return_sequences=True),
                L.GRU(3, reset_after=False, go_backwards=True),
                L.Dense(2),
            ]
        )
        x = masked_sequences(g, 6, 6, 3)
        y = g.normal(0.0, 1.0, size=(6, 2)).astype(np.float32)
        loss = "mean_squared_error"
    weights = set_weights(model, g)
    model.compile(optimizer=optimizer, loss=loss)
    losses, after = [], []
    for _ in range(steps):
        losses.append(float(model.train_on_batch(x, y)))
        after.append({path(model, v): floats(np.asarray(v)) for v in model.weights})
    return {
        "name": name,
        "weight_names": [path(model, v) for v in model.weights],
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "losses": losses,
        "after": after,
    }
