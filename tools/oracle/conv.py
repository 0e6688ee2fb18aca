"""Conv1D and Conv2D: every argument combination kiln supports, and Keras 1's spelling.

Every case is a keras.Sequential model (a fresh session each, so layer names restart) whose
weights are set from a seeded generator and stored. Stored per case:
- `y`: `model(x)` (inference);
- `t`, `grads`, `dx`: `jax.grad` of `sum((y - t)^2) / (2 * batch) + sum(model losses)`
  (the activity penalties; no case has a weight regularizer here) with respect to every
  weight, in Keras's order and layout, and with respect to the input `x`, through
  `model.stateless_call(..., training=False, return_losses=True)`: the loss kiln's tests
  feed through `__train_batch`.

Cases cover valid / same / causal padding, strides 1 and 2 (and per-axis tuples),
dilation 2, groups 2, channels_first, use_bias False, activations, odd sizes, a kernel
larger than its input under `same`, an activity regularizer, and chains (a Dense before the
convolution makes its input gradient reach a weight's gradient).

`keras1_notes` is the seed notes' Keras 1 model, `Convolution2D(n, 3, 3, border_mode="same",
input_shape=(3, h, w), dim_ordering="th")` then `Flatten()`, at a smaller size: Keras 3 reads
it as `Conv2D(n, (3, 3), padding="same", data_format="channels_first")` then `Flatten()`,
whose `data_format` defaults to channels_last, so it flattens the (filters, h, w) tensor in
its own order, as Keras 1's Flatten did.

`steps`: one `train_on_batch` with SGD on convolutions with weight regularizers and
constraints: the reported loss and every weight after the step.

Also writes tests/data/baked/conv.safetensors: the weights of `chain_conv2d_channels_first`,
which tests/conv.rs bakes into a model with `#[weights = ...]` and compares with Keras's `y`.
"""
import pathlib

import jax
import jax.numpy as jnp
import keras
import numpy as np

from oracle._util import floats, rng

L = keras.layers
F32 = np.float32


def set_weights(model, g):
    weights = {}
    for layer in model.layers:
        for w in layer.weights:
            value = g.uniform(-0.8, 0.8, size=tuple(w.shape)).astype(F32)
            w.assign(value)
            weights[f"{layer.name}/{w.name}"] = {"shape": list(w.shape), "values": floats(value)}
    return weights


def gradients(model, x, t):
    """d/dw and d/dx of sum((y - t)^2) / (2 n) + sum(losses), in inference mode."""
    trainable = [v.value for v in model.trainable_variables]
    others = [v.value for v in model.non_trainable_variables]
    n = x.shape[0]

    def loss(tv, x):
        y, _, losses = model.stateless_call(tv, others, x, training=False, return_losses=True)
        total = jnp.sum((y - t) ** 2) / (2.0 * n)
        for extra in losses:
            total = total + extra
        return total

    grads, dx = jax.grad(loss, argnums=(0, 1))(trainable, x)
    names = [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.trainable_weights]
    return {name: floats(np.asarray(gr)) for name, gr in zip(names, grads)}, floats(dx)


def case(name, input_shape, layers, batch, seed):
    """`layers` is a function returning the layers, so they are built (and named) after the
    session is cleared."""
    g = rng(seed)
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers())
    weights = set_weights(model, g)
    x = g.normal(0.0, 1.0, size=(batch,) + tuple(input_shape)).astype(F32)
    y = np.asarray(model(x))
    # Read before `gradients`: a stateless call resets the model's losses.
    activity_loss = float(sum(float(v) for v in model.losses))
    t = g.uniform(-1.0, 1.0, size=y.shape).astype(F32)
    grads, dx = gradients(model, jnp.asarray(x), jnp.asarray(t))
    return {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weight_names": [f"{l.name}/{w.name}" for l in model.layers for w in l.weights],
        "layer_names": [l.name for l in model.layers],
        "layer_classes": [type(l).__name__ for l in model.layers],
        "weights": weights,
        "batch": batch,
        "x": floats(x),
        "y": floats(y),
        "activity_loss": activity_loss,
        "t": floats(t),
        "grads": grads,
        "dx": dx,
    }


def step_case(name, input_shape, layers, batch, seed, lr):
    g = rng(seed)
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers())
    weights = set_weights(model, g)
    x = g.normal(0.0, 1.0, size=(batch,) + tuple(input_shape)).astype(F32)
    t = g.normal(0.0, 1.0, size=(batch,) + tuple(model.output_shape[1:])).astype(F32)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    value = model.train_on_batch(x, t)
    after = {f"{l.name}/{v.name}": floats(v.numpy()) for l in model.layers for v in l.weights}
    return {
        "name": name,
        "lr": lr,
        "weights": weights,
        "x": floats(x),
        "t": floats(t),
        "loss": float(value),
        "after": after,
    }


def cases():
    R = keras.regularizers
    return [
        # Conv1D
        case("conv1d_valid", (9, 3), lambda: [L.Conv1D(4, 3)], 3, 1),
        case("conv1d_same_stride2_even_kernel", (10, 3),
             lambda: [L.Conv1D(5, 4, strides=2, padding="same")], 3, 2),
        case("conv1d_causal_dilation2", (11, 2),
             lambda: [L.Conv1D(3, 3, padding="causal", dilation_rate=2)], 2, 3),
        case("conv1d_causal_stride3_groups2", (9, 4),
             lambda: [L.Conv1D(6, 3, strides=3, padding="causal", groups=2)], 2, 4),
        case("conv1d_channels_first_groups2", (4, 9),
             lambda: [L.Conv1D(4, 3, groups=2, data_format="channels_first",
                               activation="tanh")], 3, 5),
        case("conv1d_same_dilation3_no_bias", (7, 2),
             lambda: [L.Conv1D(2, 3, padding="same", dilation_rate=3, use_bias=False)], 2, 6),
        case("conv1d_activity_regularizer", (8, 3),
             lambda: [L.Conv1D(3, 2, activation="relu",
                               activity_regularizer=R.L1L2(l1=0.01, l2=0.02))], 3, 7),
        # Conv2D
        case("conv2d_valid", (6, 5, 3), lambda: [L.Conv2D(4, 3)], 2, 11),
        case("conv2d_same_stride2_odd", (7, 6, 2),
             lambda: [L.Conv2D(3, (3, 2), strides=2, padding="same")], 2, 12),
        case("conv2d_strides_2_1_valid", (7, 6, 2),
             lambda: [L.Conv2D(3, (2, 3), strides=(2, 1))], 2, 13),
        case("conv2d_dilation2_same_relu", (7, 7, 3),
             lambda: [L.Conv2D(4, 3, dilation_rate=2, padding="same", activation="relu")], 2, 14),
        case("conv2d_groups2_tanh", (5, 4, 4),
             lambda: [L.Conv2D(6, 2, groups=2, activation="tanh")], 2, 15),
        case("conv2d_channels_first_same", (3, 6, 5),
             lambda: [L.Conv2D(4, 3, padding="same", data_format="channels_first")], 2, 16),
        case("conv2d_channels_first_stride2_no_bias", (2, 7, 6),
             lambda: [L.Conv2D(5, (2, 3), strides=(2, 1), data_format="channels_first",
                               use_bias=False, activation="sigmoid")], 2, 17),
        case("conv2d_kernel_larger_than_input_same", (3, 4, 2),
             lambda: [L.Conv2D(2, 5, padding="same")], 2, 18),
        case("conv2d_channels_first_groups2_dilation2", (4, 7, 6),
             lambda: [L.Conv2D(2, (2, 3), dilation_rate=(2, 1), groups=2,
                               data_format="channels_first", padding="same")], 2, 19),
        # Chains: the Dense kernels' gradients carry the convolutions' input gradients.
        case("chain_conv1d", (8, 3),
             lambda: [L.Dense(4), L.Conv1D(5, 3, padding="causal", activation="elu"),
                      L.Conv1D(3, 2, strides=2), L.Flatten(), L.Dense(2)], 3, 21),
        case("chain_conv2d_channels_first", (5, 6, 2),
             lambda: [L.Dense(3), L.Conv2D(4, 3, padding="same", data_format="channels_first",
                                           activation="relu"),
                      L.Conv2D(2, 2, strides=2), L.Flatten(), L.Dense(2)], 2, 22),
        case("conv2d_softmax_last", (4, 4, 2),
             lambda: [L.Conv2D(3, 2, activation="softmax")], 2, 23),
        # The notes' Keras 1 model (smaller): Convolution2D(4, 3, 3, border_mode="same",
        # input_shape=(3, 6, 5), dim_ordering="th"), Flatten().
        case("keras1_notes", (3, 6, 5),
             lambda: [L.Conv2D(4, (3, 3), padding="same", data_format="channels_first"),
                      L.Flatten()], 2, 24),
    ]


def steps():
    R, C = keras.regularizers, keras.constraints
    return [
        step_case("conv2d_l2_max_norm", (5, 5, 2),
                  lambda: [L.Conv2D(3, 2, kernel_regularizer=R.L2(0.05),
                                    bias_regularizer=R.L1(0.02),
                                    kernel_constraint=C.MaxNorm(0.9, axis=3),
                                    bias_constraint=C.NonNeg()),
                           L.Flatten(), L.Dense(2)], 4, 31, 0.3),
        step_case("conv1d_l1_unit_norm", (6, 2),
                  lambda: [L.Conv1D(3, 3, padding="same", kernel_regularizer=R.L1(0.03),
                                    kernel_constraint=C.UnitNorm(axis=0))], 3, 32, 0.2),
    ]


def write_baked(case):
    from safetensors.numpy import save_file

    path = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "baked"
    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: np.asarray(spec["values"], dtype=F32).reshape(spec["shape"])
        for name, spec in case["weights"].items()
    }
    save_file(tensors, str(path / "conv.safetensors"))


def generate():
    all_cases = cases()
    write_baked(next(c for c in all_cases if c["name"] == "chain_conv2d_channels_first"))
    return {"cases": all_cases, "steps": steps()}
