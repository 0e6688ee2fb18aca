"""kiln's training against Keras 3 (JAX backend), model by model.

Every case builds a `keras.Sequential` after `keras.backend.clear_session()` (so layer
names restart at `dense`), assigns every weight from a seeded generator, and stores those
start weights under Keras's own paths (`dense/kernel`), then a batch of 5 samples:

- `gradients`: Dense(4, tanh) -> Dense(3, softmax) under categorical (one-hot), sparse
  (integer ids), MSE and MAE; Dense(1, sigmoid) under binary cross-entropy; a linear last
  layer under the three `from_logits=True` losses; and Dense -> PReLU -> Dense,
  Dense -> ELU -> Dense. `loss` and `gradients` come from `jax.value_and_grad` of the loss
  over `model.stateless_call(trainable, non_trainable, x, training=False)`. Each case also
  records one `train_on_batch` step with SGD(0.1) (`sgd_loss`, `sgd_after`), which is what
  kiln's trainer (fused softmax / sigmoid gradient included) must reproduce.
- `regularized`: weight regularizers, an activity regularizer and constraints. `loss` is the
  data loss plus Keras's regularization terms (weight and activity regularizers, as
  `stateless_call(return_losses=True)` returns them under the traced weights), `gradients`
  its gradient, and `after` the weights after one SGD `train_on_batch` step (constraints
  applied after the update, as Keras does). The script asserts that `train_on_batch`'s
  loss equals `loss` and that `w - lr * g` then the constraint gives `after`, so the traced
  regularization is the one Keras trains with.
- `steps`: from one start (weights, batch, one-hot labels), `steps` calls of
  `model.compile(optimizer, "categorical_crossentropy")` + `train_on_batch`, with each
  call's returned loss and the weights after each call.

The first-layer weights are uniform in [-0.8, 0.8] and the inputs standard normal, so no
softmax or sigmoid output comes near Keras's 1e-7 clip: there kiln's fused (p - y) / n
gradient and Keras's chained one through the clip are the same function (checked below).
"""
import jax
import jax.numpy as jnp
import keras
import numpy as np

from oracle._util import floats, rng

F32 = np.float32
L = keras.layers
R = keras.regularizers
C = keras.constraints
O = keras.optimizers

BATCH = 5
FEATURES = 6


def paths(model, trainable_only=False):
    """Keras's weight names as `layer.name/weight.name` (`dense_1/kernel`; Keras's own
    `w.path` adds the model's name in front), in `model.weights` order."""
    return [
        f"{layer.name}/{w.name}"
        for layer in model.layers
        for w in (layer.trainable_weights if trainable_only else layer.weights)
    ]


def build(layers, seed, scale_columns=None):
    """A fresh Sequential over `layers()` with every weight drawn from `rng(seed)`.

    `scale_columns` maps a weight path to per-column L2 norms to impose (so a max-norm
    constraint has columns on both sides of its bound). Returns the model, the weights as
    stored in the JSON, and the generator (to draw the batch from next)."""
    keras.backend.clear_session()
    g = rng(seed)
    model = keras.Sequential([keras.Input(shape=(FEATURES,))] + layers())
    weights = {}
    for path, w in zip(paths(model), model.weights):
        if w.name == "alpha":
            value = g.uniform(0.05, 0.6, size=tuple(w.shape))  # PReLU slopes
        else:
            value = g.uniform(-0.8, 0.8, size=tuple(w.shape))
        value = value.astype(F32)
        if scale_columns and path in scale_columns:
            norms = np.sqrt(np.sum(value.astype(np.float64) ** 2, axis=0))
            value = (value * (np.asarray(scale_columns[path]) / norms)).astype(F32)
        w.assign(value)
        weights[path] = {"shape": list(w.shape), "values": floats(value)}
    return model, weights, g


def labels(kind, g, classes):
    if kind == "sparse":
        return g.integers(0, classes, size=BATCH).astype(F32)
    if kind == "binary":
        return g.integers(0, 2, size=(BATCH, classes)).astype(F32)
    if kind == "onehot":
        return np.eye(classes, dtype=F32)[g.integers(0, classes, size=BATCH)]
    return g.normal(0.0, 1.0, size=(BATCH, classes)).astype(F32)


def value_and_grads(model, loss, x, y, regularized=False):
    """`jax.value_and_grad` of the loss over the model's trainable weights (inference mode).

    With `regularized`, adds the losses `stateless_call(return_losses=True)` collects (weight
    and activity regularization), as Keras's `compute_loss` does."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    names = paths(model, trainable_only=True)

    def loss_fn(tv):
        y_pred, _, losses = model.stateless_call(
            tv, non_trainable, x, training=False, return_losses=True
        )
        total = loss(y, y_pred)
        if regularized:
            # The layers' losses under the traced weights: each weight regularizer on its
            # weight, and each activity regularizer on its output over the batch size.
            for extra in losses:
                total = total + extra
        return total, y_pred

    (value, y_pred), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    return float(value), np.asarray(y_pred), {n: floats(g) for n, g in zip(names, grads)}


def snapshot(model):
    return {p: floats(w.numpy()) for p, w in zip(paths(model), model.weights)}


def sgd_step(model, weights, loss, x, y, lr):
    """One `train_on_batch` with SGD(lr) from `weights`; returns (loss, weights after)."""
    for p, w in zip(paths(model), model.weights):
        w.assign(np.asarray(weights[p]["values"], dtype=F32).reshape(tuple(w.shape)))
    model.compile(optimizer=O.SGD(learning_rate=lr), loss=loss)
    value = float(model.train_on_batch(x, y))
    return value, snapshot(model)


def gradient_case(name, layers, loss, label_kind, seed, probabilities=None):
    model, weights, g = build(layers, seed)
    classes = model.output_shape[-1]
    x = g.normal(0.0, 1.0, size=(BATCH, FEATURES)).astype(F32)
    y = labels(label_kind, g, classes)
    value, y_pred, grads = value_and_grads(model, loss, x, y)
    if probabilities:
        # Far from Keras's clip, so that the fused gradient kiln's trainer uses is the same
        # function as Keras's chained one.
        assert y_pred.min() > 1e-3 and y_pred.max() < 1 - 1e-3, (name, y_pred)
    sgd_loss, sgd_after = sgd_step(model, weights, loss, x, y, 0.1)
    assert abs(sgd_loss - value) <= 1e-6 * max(1.0, abs(value)), (name, sgd_loss, value)
    return {
        "name": name,
        "weight_names": paths(model),
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "y_pred": floats(y_pred),
        "loss": value,
        "gradients": grads,
        "sgd_learning_rate": 0.1,
        "sgd_loss": sgd_loss,
        "sgd_after": sgd_after,
    }


def dense_softmax():
    return [L.Dense(4, activation="tanh"), L.Dense(3, activation="softmax")]


def dense_linear():
    return [L.Dense(4, activation="tanh"), L.Dense(3)]


def gradient_cases():
    K = keras.losses
    return [
        gradient_case("softmax_cce", dense_softmax, K.CategoricalCrossentropy(), "onehot", 1, True),
        gradient_case("softmax_sparse", dense_softmax, K.SparseCategoricalCrossentropy(), "sparse", 2, True),
        gradient_case("softmax_mse", dense_softmax, K.MeanSquaredError(), "normal", 3, True),
        gradient_case("softmax_mae", dense_softmax, K.MeanAbsoluteError(), "normal", 4, True),
        gradient_case(
            "sigmoid1_bce",
            lambda: [L.Dense(4, activation="tanh"), L.Dense(1, activation="sigmoid")],
            K.BinaryCrossentropy(), "binary", 5, True,
        ),
        gradient_case("logits_cce", dense_linear, K.CategoricalCrossentropy(from_logits=True), "onehot", 6),
        gradient_case("logits_sparse", dense_linear, K.SparseCategoricalCrossentropy(from_logits=True), "sparse", 7),
        gradient_case(
            "logits1_bce",
            lambda: [L.Dense(4, activation="tanh"), L.Dense(1)],
            K.BinaryCrossentropy(from_logits=True), "binary", 8,
        ),
        # Another helper's backward passes: PReLU's alpha gradient and ELU's derivative
        # (alpha != 1 so its negative branch is not exp(x) - 1 by accident).
        gradient_case(
            "prelu_cce",
            lambda: [L.Dense(4), L.PReLU(), L.Dense(3, activation="softmax")],
            K.CategoricalCrossentropy(), "onehot", 9, True,
        ),
        gradient_case(
            "elu_mse",
            lambda: [L.Dense(4), L.ELU(alpha=0.7), L.Dense(3)],
            K.MeanSquaredError(), "normal", 10,
        ),
    ]


def constrain(model, values):
    """Each weight's constraint (if any) applied to `values` (path -> array), as Keras's
    optimizer does after the update."""
    out = dict(values)
    for layer in model.layers:
        for attr in ("kernel", "bias"):
            con = getattr(layer, f"{attr}_constraint", None)
            path = f"{layer.name}/{attr}"
            if con is not None and path in out:
                out[path] = np.asarray(con(jnp.asarray(out[path])))
    return out


def regularized_case(name, layers, loss, lr, seed, scale_columns):
    model, weights, g = build(layers, seed, scale_columns)
    x = g.normal(0.0, 1.0, size=(BATCH, FEATURES)).astype(F32)
    y = labels("onehot", g, 3)
    data_loss, y_pred, _ = value_and_grads(model, loss, x, y)
    value, _, grads = value_and_grads(model, loss, x, y, regularized=True)
    assert y_pred.min() > 1e-3 and y_pred.max() < 1 - 1e-3, (name, y_pred)
    sgd_loss, after = sgd_step(model, weights, loss, x, y, lr)
    # The traced regularization is what Keras trains with: same loss, same step.
    assert abs(sgd_loss - value) <= 1e-6 * max(1.0, abs(value)), (name, sgd_loss, value)
    stepped = {
        p: np.asarray(weights[p]["values"], dtype=F32).reshape(weights[p]["shape"])
        - F32(lr) * np.asarray(grads[p], dtype=F32).reshape(weights[p]["shape"])
        for p in grads
    }
    for p, v in constrain(model, stepped).items():
        assert np.allclose(np.reshape(v, -1), after[p], rtol=1e-5, atol=1e-6), (name, p)
    return {
        "name": name,
        "weight_names": paths(model),
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "data_loss": data_loss,
        "loss": value,
        "gradients": grads,
        "sgd_learning_rate": lr,
        "sgd_loss": sgd_loss,
        "after": after,
    }


def regularized_cases():
    return [
        # The brief's model: l2(0.01) and max_norm(2.0) on the softmax layer, whose kernel
        # columns (norm over the 4 inputs) start at 2.6, 1.5 and 2.3: the constraint
        # rescales two columns after the step and leaves one.
        regularized_case(
            "l2_max_norm",
            lambda: [
                L.Dense(4, activation="tanh", kernel_regularizer=R.L2(0.01)),
                L.Dense(3, activation="softmax", kernel_regularizer=R.L2(0.01),
                        kernel_constraint=C.MaxNorm(2.0)),
            ],
            keras.losses.CategoricalCrossentropy(), 0.1, 21, {"dense_1/kernel": [2.6, 1.5, 2.3]},
        ),
        # Every other regularizer and constraint kind, bias ones and an activity
        # regularizer (divided by the batch size) included.
        regularized_case(
            "l1l2_activity_unit_norm_min_max",
            lambda: [
                L.Dense(4, activation="tanh", kernel_regularizer=R.L1L2(l1=0.01, l2=0.02),
                        bias_regularizer=R.L2(0.05), activity_regularizer=R.L1(0.03),
                        kernel_constraint=C.UnitNorm(), bias_constraint=C.NonNeg()),
                L.Dense(3, activation="softmax", kernel_regularizer=R.L1(0.02),
                        kernel_constraint=C.MinMaxNorm(min_value=0.5, max_value=1.0, rate=0.5)),
            ],
            keras.losses.CategoricalCrossentropy(), 0.5, 22,
            {"dense/kernel": [1.0, 1.0, 1.0, 1.0], "dense_1/kernel": [0.3, 0.8, 1.4]},
        ),
    ]


def steps_case(name, optimizer, steps, seed=31):
    model, weights, g = build(dense_softmax, seed)
    x = g.normal(0.0, 1.0, size=(BATCH, FEATURES)).astype(F32)
    y = labels("onehot", g, 3)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    losses, after = [], []
    for _ in range(steps):
        losses.append(float(model.train_on_batch(x, y)))
        after.append(snapshot(model))
    config = {
        k: v for k, v in optimizer.get_config().items()
        if isinstance(v, (int, float, bool)) and v is not None
    }
    return {
        "name": name,
        "optimizer": optimizer.__class__.__name__,
        "config": config,
        "weight_names": paths(model),
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "losses": losses,
        "after": after,
    }


def steps_cases():
    return [
        steps_case("sgd", O.SGD(learning_rate=0.1), 2),
        steps_case("sgd_momentum", O.SGD(learning_rate=0.1, momentum=0.9), 3),
        steps_case("sgd_nesterov", O.SGD(learning_rate=0.1, momentum=0.9, nesterov=True), 3),
        steps_case("adam_default", O.Adam(), 3),
        steps_case("adam_lr_0.01", O.Adam(learning_rate=0.01), 3),
        steps_case("adam_amsgrad", O.Adam(learning_rate=0.01, amsgrad=True), 3),
        steps_case("adamw_default", O.AdamW(), 3),
        steps_case("adamw_lr_0.01", O.AdamW(learning_rate=0.01, weight_decay=0.1), 3),
        steps_case("rmsprop_default", O.RMSprop(), 3),
        steps_case("rmsprop_momentum_centered", O.RMSprop(learning_rate=0.01, momentum=0.5, centered=True), 3),
        steps_case("adagrad_default", O.Adagrad(), 3),
        steps_case("adagrad_lr_0.1", O.Adagrad(learning_rate=0.1), 3),
    ]


def generate():
    return {
        "gradients": gradient_cases(),
        "regularized": regularized_cases(),
        "steps": steps_cases(),
    }
