"""Bidirectional and TimeDistributed: outputs, masks and `jax.grad` gradients.

Each case is a keras.Sequential model built in a fresh session (so automatic names restart;
a wrapped layer is named before its wrapper, as Python builds it), weights set from a
seeded generator and stored under their Keras 3 paths relative to the model
(`bidirectional/forward_lstm/lstm_cell/kernel`, `time_distributed/dense/kernel`), with:
- `y`: `model(x)` in inference, `mask` the Keras mask on the output when there is one;
- `t` and `grads`: `jax.grad` of `sum((y - t)^2) / (2 * batch)` with respect to every
  weight, in inference mode (see tools/oracle/recurrent.py, whose helpers these are).

Masked inputs hold all-zero timesteps masked by `Masking` (one sample fully masked), or
Embedding ids with zeros (`mask_zero = True`). Keras 3's Bidirectional forces
`zero_output_for_mask = return_sequences` on both directions: with `return_sequences` a
masked timestep outputs zeros in each direction before the merge.

`dropout` holds SimpleRNN/LSTM/GRU cases with `dropout`/`recurrent_dropout`: their
inference output (the masks apply in training only, so `y` equals the same model's without
dropout); Keras's random dropout masks cannot be matched draw for draw, so training is
checked in tests/wrappers.rs by expectation and finite differences, not against Keras.

Also writes tests/data/baked/wrappers_{stacked_names,td_conv1d_pool_flatten}.safetensors,
which tests/wrappers.rs bakes into models with `#[weights = ...]`.
"""
import pathlib

import numpy as np

from oracle.recurrent import ids, masked_sequences, model_case
from oracle._util import rng

import keras

L = keras.layers


def generate():
    g = rng(1000)
    masked = lambda seed, batch, steps, features: masked_sequences(rng(seed), batch, steps, features)
    cases = [
        model_case("bi_lstm_concat", (5, 3), lambda: [L.Bidirectional(L.LSTM(4))], 3, 1001),
        model_case(
            "bi_gru_seq_sum",
            (5, 3),
            lambda: [L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum")],
            3,
            1002,
        ),
        model_case(
            "bi_simple_rnn_seq_mul",
            (4, 2),
            lambda: [L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode="mul")],
            3,
            1003,
        ),
        model_case(
            "bi_gru_reset_before_ave",
            (5, 3),
            lambda: [L.Bidirectional(L.GRU(3, reset_after=False), merge_mode="ave")],
            3,
            1004,
        ),
        model_case(
            "masking_bi_lstm_seq_dense",
            (6, 3),
            lambda: [
                L.Masking(),
                L.Bidirectional(L.LSTM(3, return_sequences=True)),
                L.Dense(2),
            ],
            4,
            1005,
            x=masked(1105, 4, 6, 3),
        ),
        model_case(
            "masking_bi_gru_mul",
            (6, 3),
            lambda: [L.Masking(), L.Bidirectional(L.GRU(3), merge_mode="mul")],
            4,
            1006,
            x=masked(1106, 4, 6, 3),
        ),
        model_case(
            "masking_bi_simple_rnn_seq_ave",
            (5, 2),
            lambda: [
                L.Masking(),
                L.Bidirectional(L.SimpleRNN(2, return_sequences=True), merge_mode="ave"),
            ],
            4,
            1007,
            x=masked(1107, 4, 5, 2),
        ),
        model_case(
            "stacked_names",
            (5, 2),
            lambda: [
                L.LSTM(3, return_sequences=True),
                L.Bidirectional(L.LSTM(2, return_sequences=True)),
                L.Bidirectional(L.GRU(2), merge_mode="sum"),
                L.Dense(1),
            ],
            3,
            1008,
        ),
        model_case(
            "bi_custom_backward",
            (5, 3),
            lambda: [
                L.Bidirectional(
                    L.LSTM(3, return_sequences=True),
                    backward_layer=L.LSTM(
                        3, return_sequences=True, go_backwards=True, activation="relu"
                    ),
                )
            ],
            3,
            1009,
        ),
        model_case(
            "embedding_bi_lstm_seq",
            (6,),
            lambda: [
                L.Embedding(9, 3, mask_zero=True),
                L.Bidirectional(L.LSTM(2, return_sequences=True)),
            ],
            4,
            1010,
            x=ids(rng(1110), 4, 6, 9),
        ),
        model_case(
            "td_dense_relu",
            (5, 3),
            lambda: [L.TimeDistributed(L.Dense(4, activation="relu"))],
            3,
            1020,
        ),
        model_case(
            "masking_td_dense_lstm",
            (6, 3),
            lambda: [L.Masking(), L.TimeDistributed(L.Dense(4)), L.LSTM(3)],
            4,
            1021,
            x=masked(1121, 4, 6, 3),
        ),
        model_case(
            "masking_td_dense_seq",
            (6, 3),
            lambda: [L.Masking(), L.TimeDistributed(L.Dense(2, activation="tanh"))],
            4,
            1022,
            x=masked(1122, 4, 6, 3),
        ),
        model_case(
            "td_conv1d_pool_flatten",
            (4, 6, 2),
            lambda: [
                L.TimeDistributed(L.Conv1D(3, 3, activation="relu")),
                L.TimeDistributed(L.MaxPooling1D(2)),
                L.TimeDistributed(L.Flatten()),
                L.TimeDistributed(L.Dense(2, name="head")),
            ],
            3,
            1023,
        ),
        model_case(
            "td_dense_softmax",
            (4, 3),
            lambda: [L.TimeDistributed(L.Dense(5)), L.TimeDistributed(L.Dense(3, activation="softmax"))],
            3,
            1024,
        ),
    ]
    dropout = [
        model_case(
            "dropout_lstm",
            (5, 3),
            lambda: [L.LSTM(4, dropout=0.3, recurrent_dropout=0.2, return_sequences=True)],
            3,
            1030,
            train=False,
        ),
        model_case(
            "dropout_gru",
            (5, 3),
            lambda: [L.GRU(3, dropout=0.25, recurrent_dropout=0.4)],
            3,
            1031,
            train=False,
        ),
        model_case(
            "dropout_simple_rnn",
            (5, 3),
            lambda: [L.SimpleRNN(3, dropout=0.5, recurrent_dropout=0.5)],
            3,
            1032,
            train=False,
        ),
    ]
    for c in cases:
        if c["name"] in BAKED:
            write_baked(c)
    return {"cases": cases, "dropout": dropout}


BAKED = ("stacked_names", "td_conv1d_pool_flatten")


def write_baked(case):
    """tests/data/baked/wrappers_<case>.safetensors, which tests/wrappers.rs bakes in."""
    from safetensors.numpy import save_file

    path = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "baked"
    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: np.asarray(spec["values"], dtype=np.float32).reshape(spec["shape"])
        for name, spec in case["weights"].items()
    }
    save_file(tensors, str(path / f"wrappers_{case['name']}.safetensors"))
