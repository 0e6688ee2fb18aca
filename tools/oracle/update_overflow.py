"""An update that overflows from finite losses and gradients (issue 13), in Keras: the
model `Input(2) -> Dense(2) -> Dense(1)`, mean squared error, batches of 2 samples in
order, one `train_on_batch` per batch. "sgd": SGD whose learning rate jumps to 1e38 at the
third step (`PiecewiseConstantDecay([1], [0.01, 1e38])`); "adam": Adam (defaults) whose
third batch has inputs and labels of 1e10 (gradients about 1e20: finite, their squares in
`v` not). Records the weights before the third step (what kiln's `fit` keeps when it
refuses that step), whether the third step leaves Keras's weights or optimizer variables
non-finite, and whether the weights are still finite after one more ordinary step."""
import keras
import numpy as np

from oracle._util import floats, rng

L = keras.layers


def data(large):
    big = 1e10 if large else 1.0
    x = np.array([0.5, -0.5, 1.0, 2.0, 0.25, 1.5, -1.0, 0.5, big, big, -big, big], np.float32)
    y = np.array([100.0, -50.0, 80.0, 60.0, big, -big], np.float32)
    return x.reshape(6, 2), y.reshape(6, 1)


def weights(model):
    return {f"{layer.name}/{w.name}": w.numpy() for layer in model.layers for w in layer.weights}


def case(name, optimizer, large):
    keras.backend.clear_session()
    g = rng(13)
    model = keras.Sequential([keras.Input((2,)), L.Dense(2), L.Dense(1)])
    initial = {}
    for layer in model.layers:
        for w in layer.weights:
            value = g.uniform(-0.8, 0.8, size=tuple(w.shape)).astype(np.float32)
            w.assign(value)
            initial[f"{layer.name}/{w.name}"] = floats(value)
    model.compile(optimizer, "mse")
    x, y = data(large)
    for b in range(2):
        model.train_on_batch(x[2 * b : 2 * b + 2], y[2 * b : 2 * b + 2])
    before = {k: floats(v) for k, v in weights(model).items()}
    loss = model.train_on_batch(x[4:6], y[4:6])
    after = weights(model)
    state = {v.path: np.asarray(v.numpy(), np.float32) for v in model.optimizer.variables}
    weights_finite = all(np.isfinite(v).all() for v in after.values())
    state_finite = all(np.isfinite(v).all() for v in state.values())
    # One more ordinary step (the first batch again): with an infinite `v`, Adam's weights
    # become NaN there.
    model.train_on_batch(x[0:2], y[0:2])
    next_finite = all(np.isfinite(v).all() for v in weights(model).values())
    return {
        "name": name,
        "large": large,
        "initial": initial,
        "before": before,
        "loss_of_third_step": floats([loss]),
        "after": {k: floats(v) for k, v in after.items()},
        "after_weights_finite": bool(weights_finite),
        "after_state_finite": bool(state_finite),
        "non_finite_state": sorted(k for k, v in state.items() if not np.isfinite(v).all()),
        "keras_non_finite_after": not (weights_finite and state_finite),
        "next_step_weights_finite": bool(next_finite),
    }


def generate():
    sgd = keras.optimizers.SGD(
        learning_rate=keras.optimizers.schedules.PiecewiseConstantDecay([1], [0.01, 1e38])
    )
    return {
        "cases": [
            case("sgd", sgd, False),
            case("adam", keras.optimizers.Adam(), True),
        ]
    }
