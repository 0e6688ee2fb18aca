"""Training steps of a small conv net with BatchNormalization against Keras 3 (JAX backend).

The model (issue 9's parity net):

    Input(12, 12, 2) -> Conv2D(4, 3, padding="same") -> BatchNormalization -> ReLU
      -> MaxPooling2D -> Conv2D(6, 3) -> GlobalAveragePooling2D -> Dense(3, softmax)

built after `keras.backend.clear_session()` (so layer names restart at `conv2d`), every
weight assigned from a seeded generator (kernels and biases uniform in [-0.5, 0.5], gamma in
[0.5, 1.5], moving means in [-0.5, 0.5], moving variances in [0.2, 2]) and stored under
Keras's own paths (`conv2d/kernel`, `batch_normalization/moving_mean`). Each case in `steps`:

- `optimizer` and its numeric `config`; `weight_names`, `trainable` (Keras's flag per
  weight, in `model.weights` order) and the start `weights`;
- three batches (`x`: (steps, batch, 12, 12, 2), `y`: one-hot (steps, batch, 3)), then for
  each one `model.train_on_batch(x[i], y[i])` with categorical cross-entropy: the returned
  loss (`losses`) and every weight after the call (`after`, moving statistics included, which
  Keras updates in the training forward pass from the weights before the step).

`gradients` holds, for the first batch from the start weights, `jax.grad` of the same loss
over the trainable weights with `stateless_call(training=True)` (BatchNormalization on the
batch statistics), and `updated` the moving statistics that call returns; the script checks
that one SGD(0.1) `train_on_batch` is `w - 0.1 * g` with those statistics, so the traced
gradient is the one Keras trains with. The Conv2D bias in front of BatchNormalization has a
zero gradient (the batch mean removes any per-channel shift): its stored values are
rounding noise, which the Rust test bounds instead of comparing.

Every softmax output stays inside (1e-3, 1 - 1e-3), far from Keras's 1e-7 clip, so kiln's
fused `(p - y) / n` gradient and Keras's chained one are the same function.
"""
import jax
import keras
import numpy as np

from oracle._util import floats, rng

F32 = np.float32
L = keras.layers
O = keras.optimizers

INPUT = (12, 12, 2)
CLASSES = 3
BATCH = 8
STEPS = 3


def paths(model):
    return [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.weights]


def trainable_paths(model):
    return [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.trainable_weights]


def non_trainable_paths(model):
    return [
        f"{layer.name}/{w.name}" for layer in model.layers for w in layer.non_trainable_weights
    ]


def snapshot(model):
    return {p: floats(w.numpy()) for p, w in zip(paths(model), model.weights)}


def build(seed):
    """The parity net with every weight drawn from `rng(seed)`; returns the model, the
    stored start weights and the generator (to draw the batches from next)."""
    keras.backend.clear_session()
    g = rng(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT),
            L.Conv2D(4, 3, padding="same"),
            L.BatchNormalization(),
            L.ReLU(),
            L.MaxPooling2D(),
            L.Conv2D(6, 3),
            L.GlobalAveragePooling2D(),
            L.Dense(CLASSES, activation="softmax"),
        ]
    )
    weights = {}
    for path, w in zip(paths(model), model.weights):
        shape = tuple(w.shape)
        if w.name == "moving_variance":
            value = g.uniform(0.2, 2.0, size=shape)
        elif w.name == "gamma":
            value = g.uniform(0.5, 1.5, size=shape)
        else:
            value = g.uniform(-0.5, 0.5, size=shape)
        value = value.astype(F32)
        w.assign(value)
        weights[path] = {"shape": list(shape), "values": floats(value)}
    return model, weights, g


def load(model, weights):
    for p, w in zip(paths(model), model.weights):
        w.assign(np.asarray(weights[p]["values"], dtype=F32).reshape(tuple(w.shape)))


def first_batch_gradients(model, x, y):
    """`jax.grad` of the categorical cross-entropy in training mode, the updated moving
    statistics, and the softmax outputs of that pass."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    loss = keras.losses.CategoricalCrossentropy()

    def loss_fn(tv):
        y_pred, updated = model.stateless_call(tv, non_trainable, x, training=True)
        return loss(y, y_pred), (y_pred, updated)

    (value, (y_pred, updated)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    return (
        float(value),
        np.asarray(y_pred),
        {p: np.asarray(gr) for p, gr in zip(trainable_paths(model), grads)},
        {p: np.asarray(v) for p, v in zip(non_trainable_paths(model), updated)},
    )


def check_sgd_step(model, weights, x, y, value, grads, updated):
    """One SGD(0.1) `train_on_batch` is `w - 0.1 * g` with the traced gradient, and the
    moving statistics are the traced pass's."""
    load(model, weights)
    model.compile(optimizer=O.SGD(learning_rate=0.1), loss="categorical_crossentropy")
    sgd_loss = float(model.train_on_batch(x, y))
    assert abs(sgd_loss - value) <= 1e-6 * max(1.0, abs(value)), (sgd_loss, value)
    after = dict(zip(paths(model), model.weights))
    for p, gr in grads.items():
        start = np.asarray(weights[p]["values"], dtype=F32).reshape(gr.shape)
        assert np.allclose(after[p].numpy(), start - F32(0.1) * gr, rtol=1e-5, atol=1e-7), p
    for p, v in updated.items():
        assert np.allclose(after[p].numpy(), v, rtol=1e-6, atol=1e-7), p


def steps_case(name, optimizer, seed):
    model, weights, g = build(seed)
    xs = g.normal(0.0, 1.0, size=(STEPS, BATCH) + INPUT).astype(F32)
    ys = np.eye(CLASSES, dtype=F32)[g.integers(0, CLASSES, size=(STEPS, BATCH))]

    value, y_pred, grads, updated = first_batch_gradients(model, xs[0], ys[0])
    assert y_pred.min() > 1e-3 and y_pred.max() < 1 - 1e-3, (name, y_pred)
    # The bias in front of BatchNormalization: zero up to rounding.
    bias_grad = grads["conv2d/bias"]
    assert np.abs(bias_grad).max() < 1e-6 * np.abs(grads["conv2d/kernel"]).max(), bias_grad
    check_sgd_step(model, weights, xs[0], ys[0], value, grads, updated)

    load(model, weights)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    losses, after = [], []
    for x, y in zip(xs, ys):
        losses.append(float(model.train_on_batch(x, y)))
        after.append(snapshot(model))
        y_pred = np.asarray(model(x, training=False))
        assert y_pred.min() > 1e-3 and y_pred.max() < 1 - 1e-3, (name, y_pred)
    config = {
        k: v
        for k, v in optimizer.get_config().items()
        if isinstance(v, (int, float, bool)) and v is not None
    }
    return {
        "name": name,
        "optimizer": optimizer.__class__.__name__,
        "config": config,
        "input_shape": list(INPUT),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "trainable_param_count": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "layer_names": [layer.name for layer in model.layers],
        "weight_names": paths(model),
        "trainable": [w.trainable for w in model.weights],
        "weights": weights,
        "batch": BATCH,
        "steps": STEPS,
        "x": floats(xs),
        "y": floats(ys),
        "loss": value,
        "gradients": {p: floats(gr) for p, gr in grads.items()},
        "updated": {p: floats(v) for p, v in updated.items()},
        "losses": losses,
        "after": after,
    }


def generate():
    return {
        "steps": [
            steps_case("sgd_momentum", O.SGD(learning_rate=0.05, momentum=0.9), 41),
            steps_case("adam", O.Adam(learning_rate=0.01), 42),
        ]
    }
