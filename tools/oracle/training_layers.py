"""Training through the shape and activation layers, from Keras 3 on JAX.

- grads: `jax.value_and_grad` of the mean squared error of a Sequential model (through
  `model.stateless_call(..., training=True)`) with respect to every weight, in Keras's
  order and layout. The PReLU cases cover shared_axes None / [1] / [1, 2]; `prelu_zeros`
  feeds PReLU exact zeros (an identity Dense before it), where JAX's `relu` derivative of 0
  makes the input gradient 0. The chains pass gradients through Reshape, Permute,
  Softmax(axis=1), Flatten, RepeatVector, LeakyReLU, ELU and ReLU; the `masked_softmax`
  cases put Keras's Masking in front, with masked rows and a sample with one row kept.
- steps: `model.compile(SGD(lr), loss)` and one `train_on_batch`: the reported loss (which
  includes regularization) and every weight after the step. PReLU's alpha_regularizer and
  alpha_constraint act here; `softmax_cce` is the last-layer Softmax whose gradient kiln
  fuses with the cross-entropy.
"""
import jax
import keras
import numpy as np

from oracle._util import floats, rng

F32 = np.float32
L = keras.layers


def build(input_shape, layers, g, weights=None):
    """A fresh Sequential model of `layers()` with seeded weights (or the given ones, by
    weight name). `layers` is a function so that the layers are made after the session is
    cleared: their automatic names then restart, as in a fresh kiln model."""
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers())
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            name = f"{layer.name}/{w.name}"
            if weights and name in weights:
                value = np.asarray(weights[name], dtype=F32).reshape(tuple(w.shape))
            else:
                # PReLU slopes in (0.05, 0.6): ordinary leaky slopes.
                lo, hi = (0.05, 0.6) if w.name == "alpha" else (-0.8, 0.8)
                value = g.uniform(lo, hi, size=tuple(w.shape)).astype(F32)
            w.assign(value)
            out[name] = {"shape": list(w.shape), "values": floats(value)}
    return model, out


def grads_case(name, input_shape, layers, batch, seed, weights=None, x=None):
    g = rng(seed)
    model, w = build(input_shape, layers, g, weights)
    if x is None:
        x = g.normal(0.0, 1.0, size=(batch,) + tuple(input_shape)).astype(F32)
    x = np.asarray(x, dtype=F32)
    t = g.normal(0.0, 1.0, size=(batch,) + tuple(model.output_shape[1:])).astype(F32)
    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]
    loss = keras.losses.MeanSquaredError()

    def f(tv):
        y, _ = model.stateless_call(tv, fixed, x, training=True)
        return loss(t, y)

    value, grads = jax.value_and_grad(f)(trainable)
    names = [f"{l.name}/{v.name}" for l in model.layers for v in l.trainable_weights]
    return {
        "name": name,
        "weight_names": names,
        "weights": w,
        "x": floats(x),
        "t": floats(t),
        "y": floats(model(x)),
        "loss": float(value),
        "grads": {n: floats(gr) for n, gr in zip(names, grads)},
    }


def grads():
    eye = np.eye(3, dtype=F32)
    # PReLU's input is x itself; a third of it exactly 0 (and one -0.0).
    zeros_x = np.array([[[0.0, -1.0, 2.0], [0.5, 0.0, -0.3]],
                        [[-0.0, 0.7, -2.0], [0.0, -0.4, 1.1]]], dtype=F32)
    return [
        grads_case("prelu_zeros", (2, 3), lambda: [L.Dense(3), L.PReLU(), L.Dense(2)], 2, 1,
                   weights={"dense/kernel": eye, "dense/bias": np.zeros(3)}, x=zeros_x),
        grads_case("prelu_none", (3, 2, 4), lambda: [L.Dense(3), L.PReLU(), L.Dense(2)], 3, 2),
        grads_case("prelu_shared_1", (3, 2, 4),
                   lambda: [L.Dense(3), L.PReLU(shared_axes=[1]), L.Dense(2)], 3, 3),
        grads_case("prelu_shared_1_2", (3, 2, 4),
                   lambda: [L.Dense(3), L.PReLU(shared_axes=[1, 2]), L.Dense(2)], 3, 4),
        grads_case("shape_chain", (4,),
                   lambda: [L.Dense(6), L.Reshape((2, 3)), L.Permute((2, 1)), L.Softmax(axis=1),
                            L.Flatten(), L.RepeatVector(2), L.Dense(2)], 3, 5),
        grads_case("activation_chain", (2, 3),
                   lambda: [L.Dense(4), L.LeakyReLU(negative_slope=0.2), L.ELU(alpha=0.7),
                            L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2),
                            L.Flatten(), L.Dense(2)], 4, 6),
        masked_softmax_case("masked_softmax_axis1", 1, 10),
        masked_softmax_case("masked_softmax_last", -1, 11),
    ]


def masked_softmax_case(name, axis, seed):
    """Masking -> Dense(3) -> Softmax(axis) -> Dense(2) on (4, 3) inputs with masked rows,
    written out so Softmax gets the mask broadcast over the features
    (`mask[..., None]`, what a Keras mask of one bool per position means to it)."""
    g = rng(seed)
    keras.backend.clear_session()
    d1, sm, d2 = L.Dense(3), L.Softmax(axis=axis), L.Dense(2)
    d1.build((None, 4, 3))
    d2.build((None, 4, 3))
    weights = {}
    for layer, lname in [(d1, "dense"), (d2, "dense_1")]:
        for w in layer.weights:
            value = g.uniform(-0.8, 0.8, size=tuple(w.shape)).astype(F32)
            w.assign(value)
            weights[f"{lname}/{w.name}"] = {"shape": list(w.shape), "values": floats(value)}
    x = g.normal(0.0, 1.0, size=(3, 4, 3)).astype(F32)
    x[0, 1] = 0.0  # one masked row in sample 0,
    x[1, 0] = 0.0  # two in sample 1,
    x[1, 3] = 0.0
    x[2] = 0.0  # and sample 2 entirely masked (a softmax line with nothing kept)
    x[2, 2] = [0.5, -1.0, 0.0]  # except one row
    t = g.normal(0.0, 1.0, size=(3, 4, 2)).astype(F32)
    names = ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    values = [jax.numpy.asarray(weights[n]["values"], dtype=F32).reshape(weights[n]["shape"])
              for n in names]
    loss = keras.losses.MeanSquaredError()

    def forward(w):
        keep = jax.numpy.any(x != 0.0, axis=-1)
        h = jax.numpy.where(keep[..., None], x, 0.0) @ w[0] + w[1]
        s = sm(h, mask=jax.numpy.broadcast_to(keep[..., None], h.shape))
        return s @ w[2] + w[3]

    value, gr = jax.value_and_grad(lambda w: loss(t, forward(w)))(values)
    return {
        "name": name,
        "weight_names": names,
        "weights": weights,
        "x": floats(x),
        "t": floats(t),
        "y": floats(forward(values)),
        "loss": float(value),
        "grads": {n: floats(v) for n, v in zip(names, gr)},
    }


def step_case(name, input_shape, layers, batch, seed, loss, lr, weights=None, labels=None):
    g = rng(seed)
    model, w = build(input_shape, layers, g, weights)
    x = g.normal(0.0, 1.0, size=(batch,) + tuple(input_shape)).astype(F32)
    if labels is None:
        labels = g.normal(0.0, 1.0, size=(batch,) + tuple(model.output_shape[1:])).astype(F32)
    labels = np.asarray(labels, dtype=F32)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=loss)
    value = model.train_on_batch(x, labels)
    after = {f"{l.name}/{v.name}": floats(v.numpy()) for l in model.layers for v in l.weights}
    return {
        "name": name,
        "lr": lr,
        "weights": w,
        "x": floats(x),
        "t": floats(labels),
        "loss": float(value),
        "after": after,
    }


def steps():
    R, C = keras.regularizers, keras.constraints
    # Alpha (2, 3) with column norms above 0.5 in columns 0 and 2, so max_norm acts.
    alpha = np.array([[0.45, 0.1, 0.5], [0.4, 0.2, 0.35]], dtype=F32)
    # Alpha (1, 3) with an entry just above 0 that the step drives negative (non_neg clips).
    small = np.array([[0.3, 0.001, -0.2]], dtype=F32)
    onehot = np.eye(3, dtype=F32)[[0, 2, 1, 2]]
    return [
        step_case("prelu_l2_max_norm", (2, 3),
                  lambda: [L.Dense(3),
                           L.PReLU(alpha_regularizer=R.L2(0.1),
                                   alpha_constraint=C.MaxNorm(0.5, axis=0)),
                           L.Dense(2)],
                  4, 7, "mse", 0.5, weights={"p_re_lu/alpha": alpha}),
        step_case("prelu_l1_non_neg_shared", (2, 3),
                  lambda: [L.Dense(3),
                           L.PReLU(alpha_regularizer=R.L1(0.05), alpha_constraint=C.NonNeg(),
                                   shared_axes=[1]),
                           L.Dense(2)],
                  4, 8, "mse", 0.5, weights={"p_re_lu/alpha": small}),
        step_case("softmax_cce", (5,), lambda: [L.Dense(3), L.Softmax()], 4, 9,
                  "categorical_crossentropy", 0.5, labels=onehot),
    ]


def generate():
    return {"grads": grads(), "steps": steps()}
