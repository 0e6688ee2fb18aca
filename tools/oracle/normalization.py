"""BatchNormalization and LayerNormalization against Keras 3 (JAX backend).

Every case builds a `keras.Sequential` after `keras.backend.clear_session()` (so layer names
restart) and assigns every weight from a seeded generator: gamma, beta and kernels uniform in
[-1, 1] (gamma in [0.5, 1.5]), moving means in [-0.5, 0.5], moving variances in [0.2, 2].
Stored per case:

- `inference`: `model(x)` (training=False: BatchNormalization uses its moving statistics)
  for BatchNormalization on rank-2 and rank-4 Keras inputs ((batch, 6) and (batch, 3, 4, 5))
  over several axes, without center and scale, and LayerNormalization over one axis, a
  leading axis, several axes and Keras's `axis=[1, -1]` (whose gamma is declared (5, 3));
- `training`: `jax.grad` with respect to every trainable weight of
  `sum((y - t)^2) / (2 * batch)` with `y` from `model.stateless_call(..., training=True)`
  (BatchNormalization normalises by the batch statistics, and the gradient goes through
  them), and the non-trainable weights that call returns (`moving_after`: the moving
  statistics after one update, `moving * momentum + batch * (1 - momentum)`). One case puts
  `Masking` in front: Keras hands the mask to BatchNormalization, whose training statistics
  then count only the kept timesteps;
- `steps`: Dense -> BatchNormalization(momentum=0.9, name="conv1-BN") -> Dense trained by
  `train_on_batch` with SGD(0.1) on three batches, with each call's loss and every weight
  (moving statistics included) after each call.
"""
import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras.src.backend.common.masking import get_keras_mask

from oracle._util import floats, rng

F32 = np.float32
L = keras.layers


def paths(model):
    return [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.weights]


def build(input_shape, layers, g):
    """A fresh Sequential over `layers()` with every weight drawn from `g`."""
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers())
    weights = {}
    for path, w in zip(paths(model), model.weights):
        shape = tuple(w.shape)
        if w.name == "moving_variance":
            value = g.uniform(0.2, 2.0, size=shape)
        elif w.name == "moving_mean":
            value = g.uniform(-0.5, 0.5, size=shape)
        elif w.name == "gamma":
            value = g.uniform(0.5, 1.5, size=shape)
        else:
            value = g.uniform(-1.0, 1.0, size=shape)
        value = value.astype(F32)
        w.assign(value)
        weights[path] = {"shape": list(shape), "values": floats(value)}
    return model, weights


def describe(name, model, weights, input_shape, batch, x):
    return {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "trainable_param_count": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "weight_names": paths(model),
        "trainable": [w.trainable for w in model.weights],
        "weights": weights,
        "batch": batch,
        "x": floats(x),
    }


def masked_input(g, shape, batch):
    """Normal values with whole timesteps zeroed (masked by `Masking`)."""
    x = g.normal(0.0, 1.5, size=(batch,) + tuple(shape)).astype(F32)
    for b in range(batch):
        x[b, b % shape[0], :] = 0.0
        if b % 2 == 0:
            x[b, (b + 2) % shape[0], :] = 0.0
    return x


def inference_case(name, input_shape, layers, batch, seed):
    g = rng(seed)
    model, weights = build(input_shape, layers, g)
    x = g.normal(0.5, 1.5, size=(batch,) + tuple(input_shape)).astype(F32)
    case = describe(name, model, weights, input_shape, batch, x)
    case["y"] = floats(np.asarray(model(x, training=False)))
    return case


def training_case(name, input_shape, layers, batch, seed, x=None):
    g = rng(seed)
    model, weights = build(input_shape, layers, g)
    if x is None:
        x = g.normal(0.5, 1.5, size=(batch,) + tuple(input_shape)).astype(F32)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    y_infer = np.asarray(model(x, training=False))
    t = g.uniform(-1.0, 1.0, size=y_infer.shape).astype(F32)
    n = x.shape[0]

    def loss(tv):
        y, updated = model.stateless_call(tv, non_trainable, x, training=True)
        return jnp.sum((y - t) ** 2) / (2.0 * n), (y, updated)

    grads, (y, updated) = jax.grad(loss, has_aux=True)(trainable)
    trainable_names = [
        f"{layer.name}/{w.name}" for layer in model.layers for w in layer.trainable_weights
    ]
    non_trainable_names = [
        f"{layer.name}/{w.name}" for layer in model.layers for w in layer.non_trainable_weights
    ]
    case = describe(name, model, weights, input_shape, batch, x)
    case["y"] = floats(np.asarray(y))
    case["t"] = floats(t)
    case["grads"] = {p: floats(np.asarray(gr)) for p, gr in zip(trainable_names, grads)}
    case["moving_after"] = {p: floats(np.asarray(v)) for p, v in zip(non_trainable_names, updated)}
    case["momentum"] = {
        layer.name: layer.momentum for layer in model.layers if hasattr(layer, "momentum")
    }
    mask = get_keras_mask(model(x))
    if mask is not None:
        case["mask"] = [int(v) for v in np.asarray(mask).reshape(-1)]
    return case


def steps_case(name, seed, steps=3, batch=6):
    g = rng(seed)
    model, weights = build(
        (5,),
        lambda: [
            L.Dense(4),
            L.BatchNormalization(momentum=0.9, name="conv1-BN"),
            L.Dense(3, activation="softmax"),
        ],
        g,
    )
    xs = g.normal(0.5, 1.5, size=(steps, batch, 5)).astype(F32)
    ys = np.eye(3, dtype=F32)[g.integers(0, 3, size=(steps, batch))]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="categorical_crossentropy")
    losses, after = [], []
    for x, y in zip(xs, ys):
        losses.append(float(model.train_on_batch(x, y)))
        after.append({p: floats(w.numpy()) for p, w in zip(paths(model), model.weights)})
    case = describe(name, model, weights, (5,), batch, xs)
    case.update({"y": floats(ys), "steps": steps, "losses": losses, "after": after})
    return case


def generate():
    bn, ln = L.BatchNormalization, L.LayerNormalization
    inference = [
        inference_case("bn_rank2", (6,), lambda: [bn()], 5, 1),
        inference_case("bn_rank4_channels_last", (3, 4, 5), lambda: [bn()], 3, 2),
        inference_case("bn_rank4_axis1", (3, 4, 5), lambda: [bn(axis=1)], 3, 3),
        inference_case("bn_rank4_axis_minus2", (3, 4, 5), lambda: [bn(axis=-2, epsilon=0.01)], 3, 4),
        inference_case(
            "bn_no_center_no_scale", (3, 4, 5), lambda: [bn(axis=2, center=False, scale=False)], 3, 5
        ),
        inference_case("bn_scale_only", (6,), lambda: [bn(center=False)], 4, 6),
        inference_case("bn_center_only", (6,), lambda: [bn(scale=False)], 4, 7),
        inference_case("dense_bn_dense", (6,), lambda: [L.Dense(5), bn(), L.Dense(2)], 6, 8),
        inference_case("ln_rank2", (6,), lambda: [ln()], 5, 11),
        inference_case("ln_rank4_last", (3, 4, 5), lambda: [ln()], 3, 12),
        inference_case("ln_rank4_axis1", (3, 4, 5), lambda: [ln(axis=1)], 3, 13),
        inference_case("ln_rank4_all_axes", (3, 4, 5), lambda: [ln(axis=[1, 2, 3])], 3, 14),
        inference_case("ln_rank4_mixed_axes", (3, 4, 5), lambda: [ln(axis=[1, -1], center=False)], 3, 15),
        inference_case("ln_no_center_no_scale", (5, 4), lambda: [ln(center=False, scale=False, epsilon=1e-5)], 3, 16),
    ]
    training = [
        training_case("bn_dense", (6,), lambda: [L.Dense(5), bn(), L.Dense(3)], 8, 21),
        training_case(
            "bn_image_axis1", (3, 4, 5), lambda: [L.Dense(4), bn(axis=1, momentum=0.8), L.Dense(2)], 3, 22
        ),
        training_case(
            "bn_no_center_no_scale", (4, 3), lambda: [L.Dense(5), bn(center=False, scale=False), L.Dense(2)], 4, 23
        ),
        training_case(
            "bn_masked",
            (5, 3),
            lambda: [L.Masking(), L.Dense(4), bn(), L.Dense(2)],
            4,
            24,
            x=masked_input(rng(124), (5, 3), 4),
        ),
        training_case("ln_dense", (6,), lambda: [L.Dense(5), ln(), L.Dense(3)], 5, 31),
        training_case("ln_sequence_axis1", (4, 3), lambda: [L.Dense(5), ln(axis=1), L.Dense(2)], 4, 32),
        training_case("ln_sequence_all", (4, 3), lambda: [L.Dense(5), ln(axis=[1, 2]), L.Dense(2)], 4, 33),
        training_case(
            "ln_image_mixed", (2, 3, 4), lambda: [L.Dense(3), ln(axis=[-1, 1], scale=False), L.Dense(2)], 3, 34
        ),
    ]
    # The mask reaches BatchNormalization: its statistics differ from the unmasked ones.
    masked = training[3]
    assert masked["mask"].count(0) > 0
    return {
        "inference": inference,
        "training": training,
        "steps": [steps_case("dense_bn_dense_sgd", 41)],
    }
