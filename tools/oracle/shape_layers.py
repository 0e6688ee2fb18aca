"""Flatten, Reshape, Permute and RepeatVector, alone and chained with Dense layers.

Every case is a keras.Sequential model; Dense weights are set from a seeded generator and
stored, so the Rust test loads the same numbers with `set_weight`. Inputs are random
float32 batches from the same generator.
"""
import keras
import numpy as np

from oracle._util import floats, rng


def model_case(name, input_shape, layers, batch, seed):
    g = rng(seed)
    keras.backend.clear_session()  # layer names restart at `dense`, as in a fresh kiln model
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers)
    weights = {}
    for layer in model.layers:
        for w in layer.weights:
            value = g.uniform(-1.0, 1.0, size=tuple(w.shape)).astype(np.float32)
            w.assign(value)
            weights[f"{layer.name}/{w.name}"] = {"shape": list(w.shape), "values": floats(value)}
    x = g.normal(0.0, 2.0, size=(batch,) + tuple(input_shape)).astype(np.float32)
    y = np.asarray(model(x))
    return {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "layer_names": [l.name for l in model.layers],
        "layer_output_shapes": [list(l.output.shape[1:]) for l in model.layers],
        "param_count": int(model.count_params()),
        "weight_names": [f"{l.name}/{w.name}" for l in model.layers for w in l.weights],
        "weights": weights,
        "batch": batch,
        "x": floats(x),
        "y": floats(y),
    }


def generate():
    L = keras.layers
    cases = [
        # The notes' chain: explicit targets, then one inferred dimension.
        model_case(
            "reshape_chain",
            (12,),
            [L.Reshape((3, 4)), L.Reshape((6, 2)), L.Reshape((-1, 2, 2))],
            3,
            11,
        ),
        model_case(
            "reshape_between_dense",
            (6,),
            [L.Dense(12), L.Reshape((3, 4)), L.Dense(5, activation="tanh"), L.Reshape((-1,))],
            4,
            12,
        ),
        model_case("permute_2d", (10, 64), [L.Permute((2, 1))], 3, 13),
        model_case("permute_3d", (2, 3, 4), [L.Permute((3, 1, 2))], 3, 14),
        model_case("permute_4d", (2, 3, 4, 5), [L.Permute((4, 2, 3, 1))], 3, 15),
        model_case("flatten_rank1", (5,), [L.Flatten(), L.Dense(2)], 3, 16),
        model_case("flatten_rank2", (3, 4), [L.Flatten()], 3, 17),
        model_case("flatten_rank3", (2, 3, 4), [L.Flatten(data_format="channels_last")], 3, 18),
        model_case(
            "repeat_vector_dense",
            (8,),
            [L.Dense(32), L.RepeatVector(3), L.Dense(5, activation="relu")],
            4,
            19,
        ),
        # Chains mixing all four with Dense on different ranks.
        model_case(
            "dense_reshape_permute_flatten",
            (6,),
            [
                L.Dense(12, activation="relu"),
                L.Reshape((3, 4)),
                L.Permute((2, 1)),
                L.Dense(5, activation="tanh"),
                L.Flatten(),
                L.Dense(3, activation="softmax"),
            ],
            5,
            20,
        ),
        model_case(
            "flatten_dense_permute_repeat",
            (4, 5),
            [
                L.Flatten(),
                L.Dense(24),
                L.Reshape((2, 3, 4)),
                L.Permute((2, 3, 1)),
                L.Reshape((-1, 4)),
                L.Dense(2, activation="sigmoid"),
                L.Flatten(),
                L.RepeatVector(2),
                L.Dense(3),
            ],
            3,
            21,
        ),
    ]
    return {"cases": cases}
