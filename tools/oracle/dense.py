"""Dense and Activation models with set weights, on rank-1, rank-2 and rank-3 inputs."""
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
        model_case("mlp_relu_softmax", (6,), [L.Dense(5, activation="relu"), L.Dense(3, activation="softmax")], 4, 1),
        model_case("tanh_no_bias", (4,), [L.Dense(7, activation="tanh", use_bias=False), L.Dense(2)], 3, 2),
        model_case("activation_layers", (5,), [L.Dense(8), L.Activation("gelu"), L.Dense(4), L.Activation("log_softmax")], 3, 3),
        model_case("rank2_last_axis", (3, 4), [L.Dense(5, activation="sigmoid"), L.Dense(2, activation="softmax")], 3, 4),
        model_case("rank3_last_axis", (2, 3, 4), [L.Dense(6, activation="elu"), L.Activation("softplus"), L.Dense(3)], 2, 5),
        model_case("selu_mish", (8,), [L.Dense(8, activation="selu"), L.Dense(8, activation="mish"), L.Dense(1, activation="sigmoid")], 5, 6),
        # Layers with enough multiply-adds that kiln runs them on its run-time-dispatched
        # kernels (one-vector kernel for one sample, GEMM for a batch and rank 2).
        model_case("wide_dispatched", (96,), [L.Dense(70, activation="relu"), L.Dense(40, use_bias=False), L.Dense(1)], 4, 7),
        model_case("wide_rank2_dispatched", (3, 40), [L.Dense(50, activation="tanh"), L.Dense(20)], 3, 8),
    ]
    return {"cases": cases}
