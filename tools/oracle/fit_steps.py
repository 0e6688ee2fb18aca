"""Training through the whole stack against Keras: loss values and every weight's gradient
for small models under each loss, and weights after real optimizer steps taken by
`model.train_on_batch` (SGD, SGD with momentum and Nesterov, Adam, AdamW, RMSprop,
Adagrad), with a regularized and constrained model among them."""
import jax
import keras
import numpy as np

from oracle._util import floats, rng

L = keras.layers


def build(layers, input_shape, seed):
    keras.backend.clear_session()
    g = rng(seed)
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers)
    weights = {}
    for layer in model.layers:
        for w in layer.weights:
            value = g.uniform(-0.8, 0.8, size=tuple(w.shape)).astype(np.float32)
            w.assign(value)
            weights[f"{layer.name}/{w.name}"] = {"shape": list(w.shape), "values": floats(value)}
    return model, weights, g


def gradients(model, loss, x, y):
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss_fn(tv):
        y_pred, _ = model.stateless_call(tv, non_trainable, x, training=False)
        return loss(y, y_pred)

    value, grads = jax.value_and_grad(loss_fn)(trainable)
    names = [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.trainable_weights]
    return float(value), {n: floats(g) for n, g in zip(names, grads)}


def labels(kind, g, batch, classes):
    ids = g.integers(0, classes, size=batch)
    if kind == "sparse":
        return ids.astype(np.float32)
    if kind == "binary":
        return g.integers(0, 2, size=(batch, classes)).astype(np.float32)
    if kind == "onehot":
        return np.eye(classes, dtype=np.float32)[ids]
    return g.normal(0.0, 1.0, size=(batch, classes)).astype(np.float32)


def gradient_case(name, last_activation, classes, loss, label_kind, seed):
    model, weights, g = build(
        [L.Dense(4, activation="tanh"), L.Dense(classes, activation=last_activation)], (6,), seed
    )
    x = g.normal(0.0, 1.0, size=(5, 6)).astype(np.float32)
    y = labels(label_kind, g, 5, classes)
    value, grads = gradients(model, loss, x, y)
    return {
        "name": name,
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "loss": value,
        "gradients": grads,
    }


def step_case(name, optimizer, steps, layers=None, loss="categorical_crossentropy", seed=11):
    layers = layers or [L.Dense(4, activation="tanh"), L.Dense(3, activation="softmax")]
    model, weights, g = build(layers, (6,), seed)
    x = g.normal(0.0, 1.0, size=(5, 6)).astype(np.float32)
    y = labels("onehot", g, 5, 3)
    model.compile(optimizer=optimizer, loss=loss)
    losses = [float(model.train_on_batch(x, y)) for _ in range(steps)]
    after = {
        f"{layer.name}/{w.name}": floats(w.numpy()) for layer in model.layers for w in layer.weights
    }
    return {
        "name": name,
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "steps": steps,
        "losses": losses,
        "after": after,
    }


def generate():
    losses = keras.losses
    gradient_cases = [
        gradient_case("softmax_cce", "softmax", 3, losses.CategoricalCrossentropy(), "onehot", 1),
        gradient_case("softmax_sparse", "softmax", 3, losses.SparseCategoricalCrossentropy(), "sparse", 2),
        gradient_case("softmax_mse", "softmax", 3, losses.MeanSquaredError(), "normal", 3),
        gradient_case("tanh_mae", "tanh", 3, losses.MeanAbsoluteError(), "normal", 4),
        gradient_case("sigmoid_bce", "sigmoid", 2, losses.BinaryCrossentropy(), "binary", 5),
        gradient_case("logits_cce", "linear", 3, losses.CategoricalCrossentropy(from_logits=True), "onehot", 6),
        gradient_case("logits_sparse", "linear", 3, losses.SparseCategoricalCrossentropy(from_logits=True), "sparse", 7),
        gradient_case("logits_bce", "linear", 2, losses.BinaryCrossentropy(from_logits=True), "binary", 8),
    ]
    O = keras.optimizers
    step_cases = [
        step_case("sgd_1", O.SGD(learning_rate=0.1), 1),
        step_case("sgd_momentum_2", O.SGD(learning_rate=0.1, momentum=0.9), 2),
        step_case("sgd_nesterov_2", O.SGD(learning_rate=0.1, momentum=0.9, nesterov=True), 2),
        step_case("adam_2", O.Adam(), 2),
        step_case("adam_lr_2", O.Adam(learning_rate=0.01), 2),
        step_case("adamw_2", O.AdamW(learning_rate=0.01), 2),
        step_case("rmsprop_1", O.RMSprop(), 1),
        step_case("rmsprop_2", O.RMSprop(learning_rate=0.01), 2),
        step_case("adagrad_2", O.Adagrad(learning_rate=0.1), 2),
        step_case(
            "regularized_constrained_sgd_1",
            O.SGD(learning_rate=0.5),
            1,
            layers=[
                L.Dense(4, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.01), kernel_constraint=keras.constraints.MaxNorm(0.9)),
                L.Dense(3, activation="softmax", bias_regularizer=keras.regularizers.L1(0.02)),
            ],
        ),
    ]
    return {"gradients": gradient_cases, "steps": step_cases}
