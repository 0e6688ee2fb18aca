"""`fit`'s data arguments against Keras: one `model.fit` per case on a small model with
`shuffle=False` (batches of 4 over 10 samples, so the last batch is short), recording the
per-epoch loss and every weight after training: `sample_weight`, `class_weight` with sparse
and one-hot labels (Keras's weighted loss is sum(loss * w) / batch size), and
`initial_epoch`."""
import keras
import numpy as np

from oracle._util import floats, rng

L = keras.layers


def case(name, loss, labels, epochs=2, **fit):
    keras.backend.clear_session()
    g = rng(7)
    model = keras.Sequential(
        [keras.Input((6,)), L.Dense(4, activation="tanh"), L.Dense(3, activation="softmax")]
    )
    weights = {}
    for layer in model.layers:
        for w in layer.weights:
            value = g.uniform(-0.8, 0.8, size=tuple(w.shape)).astype(np.float32)
            w.assign(value)
            weights[f"{layer.name}/{w.name}"] = floats(value)
    x = g.normal(size=(10, 6)).astype(np.float32)
    ids = g.integers(0, 3, size=10)
    y = ids.astype(np.float32) if labels == "sparse" else np.eye(3, dtype=np.float32)[ids]
    model.compile(keras.optimizers.SGD(learning_rate=0.1), loss)
    history = model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, **fit)
    after = {f"{layer.name}/{w.name}": floats(w.numpy()) for layer in model.layers for w in layer.weights}
    out = {
        "name": name,
        "loss": loss,
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "epochs": epochs,
        "history": floats(history.history["loss"]),
        "after": after,
    }
    for k, v in fit.items():
        if k == "class_weight":
            out[k] = [v.get(c, 1.0) for c in range(3)]
        elif isinstance(v, np.ndarray):
            out[k] = floats(v)
        else:
            out[k] = v
    return out


def generate():
    sw = rng(11).uniform(0.0, 2.0, size=10).astype(np.float32)
    return {
        "cases": [
            case("unweighted", "sparse_categorical_crossentropy", "sparse"),
            case("sample_weight", "sparse_categorical_crossentropy", "sparse", sample_weight=sw),
            case("class_weight_sparse", "sparse_categorical_crossentropy", "sparse", class_weight={0: 0.5, 2: 3.0}),
            case("class_weight_onehot", "categorical_crossentropy", "onehot", class_weight={1: 2.5}),
            case("sample_weight_mse", "mse", "onehot", sample_weight=sw),
            case("initial_epoch", "sparse_categorical_crossentropy", "sparse", epochs=3, initial_epoch=1),
        ]
    }
