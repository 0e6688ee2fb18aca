"""Masking, Dropout, ActivityRegularization and Lambda, alone and between Dense layers.

Every case is a keras.Sequential model (a fresh session each, so layer names restart)
whose weights are set from a seeded generator and stored. Stored per case:
- `y`: `model(x)` in inference (Dropout is the identity);
- `mask` (Masking cases): the Keras mask on the output, `get_keras_mask(model(x))`, as 0/1;
- `activity_loss`: `sum(model.losses)` after calling the model (the activity penalties,
  divided by the batch size as Keras 3 does);
- `t` and `grads` (training cases): `jax.grad` with respect to every weight of
  `sum((y - t)^2) / (2 * batch) + sum(losses)`, computed with `model.stateless_call(...,
  training=False, return_losses=True)`: the loss kiln's tests feed through `__train_batch`.

Masking inputs hold all-zero timesteps (masked), timesteps with some zeros (kept) and
timesteps equal to a nonzero `mask_value`.

Keras quirk: a Sequential `Softmax` after `Masking` receives the mask shaped (batch, t) and
refuses it (or, when the last axis happens to equal t, applies it along the wrong axis).
kiln applies the mask per position, which is Keras's `Softmax()(x, mask = mask[..., None])`:
those cases call the layers one by one to pass the mask that way.
"""
import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops
from keras.src.backend.common.masking import get_keras_mask

from oracle._util import floats, rng

L = keras.layers


def antirectifier(x):
    """The Keras example's antirectifier on the last axis: centre, l2-normalise, then
    concatenate the positive and the negative part (the last axis doubles)."""
    x = x - ops.mean(x, axis=-1, keepdims=True)
    x = x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))
    return ops.concatenate([ops.relu(x), ops.relu(-x)], axis=-1)


def set_weights(model, g, zero_first_bias=False):
    weights = {}
    for layer in model.layers:
        for w in layer.weights:
            value = g.uniform(-1.0, 1.0, size=tuple(w.shape)).astype(np.float32)
            if zero_first_bias and w.name == "bias" and layer is model.layers[0]:
                value = np.zeros_like(value)
            w.assign(value)
            weights[f"{layer.name}/{w.name}"] = {"shape": list(w.shape), "values": floats(value)}
    return weights


def gradients(model, x, t):
    """d/dw of sum((y - t)^2) / (2 n) + sum(activity losses), in inference mode."""
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
    names = [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.trainable_weights]
    return {name: floats(np.asarray(gr)) for name, gr in zip(names, grads)}


def masked_input(g, shape, batch, mask_value=0.0):
    """Normal values with whole masked timesteps and some single entries equal to the value."""
    x = g.normal(0.0, 1.5, size=(batch,) + tuple(shape)).astype(np.float32)
    flat = x.reshape(batch, -1, shape[-1])
    positions = flat.shape[1]
    for b in range(batch):
        # Every other sample loses two positions; all lose the entry [b, b % positions, 0].
        flat[b, b % positions, 0] = mask_value
        if b % 2 == 0:
            flat[b, (b + 1) % positions, :] = mask_value
            flat[b, (b + 3) % positions, :] = mask_value
    if batch > 2:
        flat[batch - 1, :, :] = mask_value  # a fully masked sample
    return flat.reshape(x.shape)


def model_case(name, input_shape, layers, batch, seed, x=None, train=False, zero_first_bias=False):
    """`layers` is a function returning the layers, so they are built (and named) after the
    session is cleared."""
    g = rng(seed)
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers())
    weights = set_weights(model, g, zero_first_bias)
    if x is None:
        x = g.normal(0.0, 1.5, size=(batch,) + tuple(input_shape)).astype(np.float32)
    out = model(x)
    y = np.asarray(out)
    case = {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weight_names": [f"{l.name}/{w.name}" for l in model.layers for w in l.weights],
        "layer_names": [l.name for l in model.layers],
        "weights": weights,
        "batch": batch,
        "x": floats(x),
        "y": floats(y),
        "activity_loss": float(sum(float(v) for v in model.losses)),
    }
    mask = get_keras_mask(out)
    if mask is not None:
        case["mask"] = [int(v) for v in np.asarray(mask).reshape(-1)]
    if train:
        t = g.uniform(-1.0, 1.0, size=y.shape).astype(np.float32)
        case["t"] = floats(t)
        case["grads"] = gradients(model, jnp.asarray(x), jnp.asarray(t))
    return case


def masked_softmax_case(name, axis, batch, seed):
    """Masking -> Dense(4) -> Softmax(axis), the mask given to Softmax per position."""
    g = rng(seed)
    keras.backend.clear_session()
    shape = (5, 3)
    masking, dense, softmax = L.Masking(), L.Dense(4), L.Softmax(axis=axis)
    model = keras.Sequential([keras.Input(shape=shape), masking, dense, softmax])
    weights = set_weights(model, g)
    x = masked_input(g, shape, batch)
    h = masking(x)
    mask = masking.compute_mask(x)
    y = softmax(dense(h), mask=mask[..., None])
    return {
        "name": name,
        "input_shape": list(shape),
        "output_shape": [5, 4],
        "param_count": int(model.count_params()),
        "weight_names": [f"{l.name}/{w.name}" for l in model.layers for w in l.weights],
        "layer_names": [l.name for l in model.layers],
        "weights": weights,
        "batch": batch,
        "x": floats(x),
        "y": floats(np.asarray(y)),
        "mask": [int(v) for v in np.asarray(mask).reshape(-1)],
    }


def generate():
    g = rng(70)
    cases = [
        model_case("masking", (5, 3), lambda: [L.Masking()], 4, 71, x=masked_input(g, (5, 3), 4)),
        model_case(
            "masking_value_rank3",
            (2, 3, 4),
            lambda: [L.Masking(mask_value=1.5)],
            3,
            72,
            x=masked_input(g, (2, 3, 4), 3, mask_value=1.5),
        ),
        model_case(
            "masking_dense",
            (5, 3),
            lambda: [L.Masking(), L.Dense(4, activation="tanh")],
            4,
            73,
            x=masked_input(g, (5, 3), 4),
            train=True,
        ),
        # Dense with a zero bias keeps masked (all-zero) timesteps exactly zero, so the
        # Masking after it masks them; Keras's gradient then skips them.
        model_case(
            "dense_masking_dense",
            (5, 2),
            lambda: [L.Dense(3), L.Masking(), L.Dense(2, activation="sigmoid")],
            4,
            74,
            x=masked_input(g, (5, 2), 4),
            train=True,
            zero_first_bias=True,
        ),
        # The mask passes through Dropout and ActivityRegularization to the output.
        model_case(
            "masking_dropout_activity_dense",
            (4, 3),
            lambda: [L.Masking(), L.Dropout(0.2), L.ActivityRegularization(l2=0.1), L.Dense(3)],
            4,
            82,
            x=masked_input(g, (4, 3), 4),
            train=True,
        ),
        masked_softmax_case("masking_dense_softmax_last", -1, 4, 75),
        masked_softmax_case("masking_dense_softmax_time", 1, 4, 76),
        model_case(
            "dropout_inference",
            (6,),
            lambda: [L.Dense(8, activation="relu"), L.Dropout(0.5), L.Dense(3)],
            5,
            77,
        ),
        model_case(
            "activity_regularization",
            (3, 4),
            lambda: [L.Dense(5), L.ActivityRegularization(l1=0.01, l2=0.02)],
            4,
            78,
            train=True,
        ),
        model_case(
            "dense_dropout_activity_dense",
            (6,),
            lambda: [
                L.Dense(8, activation="tanh"),
                L.Dropout(0.3, noise_shape=(None, 8)),
                L.ActivityRegularization(l1=0.05, l2=0.1),
                L.Dense(2),
            ],
            5,
            79,
            train=True,
        ),
        model_case(
            "antirectifier",
            (8,),
            lambda: [
                L.Dense(16),
                L.Lambda(antirectifier, output_shape=(32,)),
                L.Dense(4, activation="softmax"),
            ],
            5,
            80,
            train=True,
        ),
        model_case(
            "antirectifier_sequence",
            (3, 4),
            lambda: [L.Lambda(antirectifier, output_shape=(3, 8)), L.Dense(2)],
            4,
            81,
            train=True,
        ),
    ]
    return {"cases": cases}
