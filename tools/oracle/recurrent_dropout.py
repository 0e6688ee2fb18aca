"""SimpleRNN, LSTM and GRU with `recurrent_dropout` (and `dropout` with it).

`cases`: Sequential models whose layers have `recurrent_dropout`, alone or inside
`Bidirectional`, with and without `dropout`, masks, `go_backwards`, `return_sequences` and
GRU's `reset_after`: their inference output (Keras applies no dropout outside training).

`fixed_masks`: Keras's *training* computation with dropout masks chosen here. Keras's
random draws cannot be matched by kiln bit for bit, but the cell caches its masks
(`layers/rnn/dropout_rnn_cell.py`: `get_dropout_mask` returns `_dropout_mask` when set, and
`RNN.call` draws only the missing ones before the loop and clears them after), so setting
`cell._dropout_mask` and `cell._recurrent_dropout_mask` before a call makes Keras run its
own training step with these masks. With `recurrent_dropout > 0` LSTM and GRU use
`implementation = 1`: a list of one mask per gate (`i, f, c, o`; `z, r, h`), each
`(batch, features)` for the input and `(batch, units)` for `h`; SimpleRNN has one of each.
Each mask value is 0 or `1 / (1 - rate)`, as `backend.random.dropout` of ones gives.
Stored per case: the weights, `x`, the timestep mask the layer saw, the masks in kiln's
layout (`(batch, gates / units, features)` and `(batch, gates / units, units)`, row-major),
the training output `y`, targets `t`, and `jax.grad` of `sum((y - t)^2) / (2 * batch)`
with respect to every weight (`grads`) and to `x` (`dx`).
"""
import jax
import jax.numpy as jnp
import keras
import numpy as np

from oracle._util import floats, rng
from oracle.recurrent import masked_sequences, model_case, path, set_weights

L = keras.layers


def draw_masks(g, count, batch, width, rate):
    """`count` masks of `(batch, width)`: 0 or `1 / (1 - rate)`, kept with `1 - rate`."""
    keep = g.uniform(size=(count, batch, width)) >= rate
    return (keep / (1.0 - rate)).astype(np.float32)


def fixed_mask_case(name, input_shape, make_layer, batch, seed, masking=False):
    g = rng(seed)
    keras.backend.clear_session()
    layer = make_layer()
    front = [L.Masking()] if masking else []
    model = keras.Sequential([keras.Input(shape=input_shape)] + front + [layer])
    weights = set_weights(model, g)
    steps, features = input_shape
    if masking:
        x = masked_sequences(g, batch, steps, features)
    else:
        x = g.normal(0.0, 1.0, size=(batch, steps, features)).astype(np.float32)
    cell = layer.cell
    count = getattr(cell, "dropout_mask_count", None)
    blocks = count or 1
    units = cell.units
    input_masks = (
        draw_masks(g, blocks, batch, features, cell.dropout) if cell.dropout > 0 else None
    )
    recurrent_masks = draw_masks(g, blocks, batch, units, cell.recurrent_dropout)

    def as_keras(masks):
        if masks is None:
            return None
        return [jnp.asarray(m) for m in masks] if count else jnp.asarray(masks[0])

    def preset():
        # Read by `get_dropout_mask` / `get_recurrent_dropout_mask` instead of drawing.
        cell._dropout_mask = as_keras(input_masks)
        cell._recurrent_dropout_mask = as_keras(recurrent_masks)

    trainable = [v.value for v in model.trainable_variables]
    others = [v.value for v in model.non_trainable_variables]

    def run(tv, xs):
        preset()
        y, _ = model.stateless_call(tv, others, xs, training=True)
        return y

    y = np.asarray(run(trainable, jnp.asarray(x)))
    # The masks matter: the training output is not the inference one...
    inference = np.asarray(model(x))
    assert not np.allclose(y, inference), name
    # ...and Keras used these masks, not draws of its own: with masks of ones, training is
    # inference, and the same masks give the same output.
    chosen = (input_masks, recurrent_masks)
    input_masks = None if input_masks is None else np.ones_like(input_masks)
    recurrent_masks = np.ones_like(recurrent_masks)
    assert np.allclose(np.asarray(run(trainable, jnp.asarray(x))), inference, atol=1e-6), name
    input_masks, recurrent_masks = chosen
    assert np.array_equal(np.asarray(run(trainable, jnp.asarray(x))), y), name
    t = g.uniform(-1.0, 1.0, size=y.shape).astype(np.float32)

    def loss(tv, xs):
        return jnp.sum((run(tv, xs) - t) ** 2) / (2.0 * batch)

    grads, dx = jax.grad(loss, argnums=(0, 1))(trainable, jnp.asarray(x))
    names = [path(model, v) for v in model.trainable_variables]
    timestep_mask = np.any(x != 0.0, axis=-1) if masking else np.ones((batch, steps), bool)
    kiln_layout = lambda m: floats(np.transpose(m, (1, 0, 2)))  # noqa: E731
    return {
        "name": name,
        "class": type(layer).__name__,
        "units": units,
        "timesteps": steps,
        "features": features,
        "return_sequences": layer.return_sequences,
        "go_backwards": layer.go_backwards,
        "reset_after": getattr(cell, "reset_after", None),
        "use_bias": cell.use_bias,
        "dropout": cell.dropout,
        "recurrent_dropout": cell.recurrent_dropout,
        "implementation": getattr(cell, "implementation", None),
        "mask_blocks": blocks,
        "weights": weights,
        "batch": batch,
        "x": floats(x),
        "timestep_mask": [int(v) for v in timestep_mask.reshape(-1)],
        "input_masks": None if input_masks is None else kiln_layout(input_masks),
        "recurrent_masks": kiln_layout(recurrent_masks),
        "y": floats(y),
        "t": floats(t),
        "grads": {n: floats(np.asarray(gr)) for n, gr in zip(names, grads)},
        "dx": floats(np.asarray(dx)),
    }


def generate():
    g = rng(1100)
    cases = [
        model_case("lstm_rd", (5, 3), lambda: [L.LSTM(4, recurrent_dropout=0.3)], 3, 1101, train=False),
        model_case(
            "lstm_d_rd_seq_backwards",
            (5, 3),
            lambda: [
                L.LSTM(3, dropout=0.2, recurrent_dropout=0.4, return_sequences=True, go_backwards=True)
            ],
            3,
            1102,
            train=False,
        ),
        model_case(
            "gru_d_rd", (5, 3), lambda: [L.GRU(4, dropout=0.3, recurrent_dropout=0.3)], 3, 1103, train=False
        ),
        model_case(
            "gru_reset_before_rd_seq",
            (5, 3),
            lambda: [L.GRU(3, reset_after=False, recurrent_dropout=0.5, return_sequences=True)],
            3,
            1104,
            train=False,
        ),
        model_case(
            "simple_rnn_d_rd",
            (5, 3),
            lambda: [L.SimpleRNN(4, dropout=0.25, recurrent_dropout=0.25)],
            3,
            1105,
            train=False,
        ),
        model_case(
            "masking_lstm_d_rd",
            (6, 3),
            lambda: [L.Masking(), L.LSTM(3, dropout=0.1, recurrent_dropout=0.2)],
            4,
            1106,
            x=masked_sequences(g, 4, 6, 3),
            train=False,
        ),
        model_case(
            "bidirectional_gru_d_rd_seq_sum",
            (5, 3),
            lambda: [
                L.Bidirectional(
                    L.GRU(3, dropout=0.2, recurrent_dropout=0.3, return_sequences=True),
                    merge_mode="sum",
                )
            ],
            3,
            1107,
            train=False,
        ),
        model_case(
            "bidirectional_lstm_rd",
            (5, 3),
            lambda: [L.Bidirectional(L.LSTM(2, recurrent_dropout=0.3))],
            3,
            1108,
            train=False,
        ),
    ]
    fixed = [
        fixed_mask_case(
            "simple_rnn_d_rd_seq",
            (5, 3),
            lambda: L.SimpleRNN(3, dropout=0.3, recurrent_dropout=0.4, return_sequences=True),
            3,
            1201,
        ),
        fixed_mask_case(
            "masking_lstm_d_rd",
            (6, 3),
            lambda: L.LSTM(3, dropout=0.25, recurrent_dropout=0.5),
            4,
            1202,
            masking=True,
        ),
        fixed_mask_case(
            "lstm_rd_seq_backwards",
            (5, 3),
            lambda: L.LSTM(2, recurrent_dropout=0.3, return_sequences=True, go_backwards=True),
            3,
            1203,
        ),
        fixed_mask_case(
            "gru_d_rd_seq",
            (5, 3),
            lambda: L.GRU(3, dropout=0.4, recurrent_dropout=0.3, return_sequences=True),
            3,
            1204,
        ),
        fixed_mask_case(
            "masking_gru_reset_before_d_rd_backwards",
            (6, 3),
            lambda: L.GRU(3, reset_after=False, dropout=0.2, recurrent_dropout=0.5, go_backwards=True),
            4,
            1205,
            masking=True,
        ),
        fixed_mask_case(
            "gru_no_bias_rd",
            (5, 2),
            lambda: L.GRU(2, use_bias=False, recurrent_dropout=0.25),
            3,
            1206,
        ),
    ]
    return {"cases": cases, "fixed_masks": fixed}
