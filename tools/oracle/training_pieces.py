"""The building blocks of training, from Keras 3 on JAX: losses and their gradients,
accuracy metrics, optimizer steps, regularizers and constraints.

- losses: `keras.losses.<Class>(from_logits=..)(y_true, y_pred)` with the default reduction
  ("sum_over_batch_size"), and `jax.grad` of that call with respect to `y_pred`, so the
  gradient includes Keras's epsilon clipping (zero outside [1e-7, 1 - 1e-7], half at the
  boundary as `jnp.clip` ties do) and the normalisation of probabilities by their sum.
  Probabilities include exact 0 and 1, 1e-8 and 1e-7; logits include +-20 and +-100.
  `fused` cases: the gradient with respect to the logits `z` of
  CategoricalCrossentropy(softmax(z)) / BinaryCrossentropy(sigmoid(z)) (probabilities, not
  logits, so the chain goes through Keras's clipping, which these inputs never reach),
  which kiln's fused (p - y) / n path must reproduce from `probs`.
- metrics: the stateless functions averaged over the batch, and a `keras.metrics` object
  updated with two batches (the running mean over an epoch).
- optimizers: two `keras.Variable`s, `optimizer.apply_gradients` three times with fixed
  gradients; the variables after each step.
- regularizers: value on a (3, 4) weight with a zero entry, and `jax.grad` of it.
- constraints: applied to (3, 4) matrices (one with a zero column) and a (2, 3, 4) tensor.
"""
import jax
import jax.numpy as jnp
import keras
import numpy as np

from oracle._util import floats, rng

F32 = np.float32


def f32(a):
    return np.asarray(a, dtype=F32)


def loss_case(name, cls, y_pred, y_true, from_logits=None):
    y_pred, y_true = f32(y_pred), f32(y_true)
    loss = cls() if from_logits is None else cls(from_logits=from_logits)

    def f(p):
        return loss(jnp.asarray(y_true), p)

    value = f(jnp.asarray(y_pred))
    grad = jax.grad(f)(jnp.asarray(y_pred))
    return {
        "name": name,
        "loss": cls.__name__,
        "from_logits": bool(from_logits),
        "classes": int(y_pred.shape[-1]),
        "y_pred": floats(y_pred),
        "y_true": floats(y_true),
        "value": float(value),
        "grad": floats(grad),
    }


def losses():
    g = rng(40)
    L = keras.losses
    eps = F32(1e-7)
    one_minus = F32(1.0 - 1e-7)
    reg_pred = g.normal(0.0, 1.0, (4, 3))
    reg_true = g.normal(0.0, 1.0, (4, 3))
    mae_pred = reg_pred.copy()
    mae_true = reg_true.copy()
    mae_true[1, 2] = mae_pred[1, 2]  # |0|: JAX's abs has derivative 0 there
    # Probabilities at and beyond the clip bounds, and soft labels.
    bce_pred = [[0.0, 1.0, 0.5], [1e-8, eps, 0.3], [one_minus, 0.9999, 0.02], [0.7, 0.25, 1e-3]]
    bce_true = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 0.3], [0.0, 1.0, 0.8]]
    bce_logits = [[0.0, 20.0, -20.0], [100.0, -100.0, 1.5], [-3.0, 0.25, 7.0], [-0.5, 4.0, -9.0]]
    bce1_pred = [[0.8], [0.1], [0.999], [0.4]]
    bce1_true = [[1.0], [0.0], [0.0], [1.0]]
    # Rows that sum to 1, one that does not (Keras divides by the sum), and ones with
    # entries that clip.
    cce_pred = [[0.1, 0.6, 0.2, 0.1], [1.0, 0.0, 0.0, 0.0], [0.2, 0.5, 0.6, 0.7],
                [1e-9, 0.98, 0.02, 0.0]]
    cce_true = [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25],
                [1.0, 0.0, 0.0, 0.0]]
    cce_logits = [[1.0, 2.0, -1.0, 0.5], [30.0, -30.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0],
                  [-4.0, 8.0, 2.5, -100.0]]
    sparse_true = [[1.0], [2.0], [3.0], [0.0]]
    return [
        loss_case("mse", L.MeanSquaredError, reg_pred, reg_true),
        loss_case("mae", L.MeanAbsoluteError, mae_pred, mae_true),
        loss_case("bce", L.BinaryCrossentropy, bce_pred, bce_true, False),
        loss_case("bce_one_unit", L.BinaryCrossentropy, bce1_pred, bce1_true, False),
        loss_case("bce_logits", L.BinaryCrossentropy, bce_logits, bce_true, True),
        loss_case("cce", L.CategoricalCrossentropy, cce_pred, cce_true, False),
        loss_case("cce_logits", L.CategoricalCrossentropy, cce_logits, cce_true, True),
        loss_case("scce", L.SparseCategoricalCrossentropy, cce_pred, sparse_true, False),
        loss_case("scce_logits", L.SparseCategoricalCrossentropy, cce_logits, sparse_true, True),
    ]


def fused():
    g = rng(41)
    z = f32(g.normal(0.0, 1.5, (4, 5)))
    onehot = f32(np.eye(5)[[3, 0, 4, 1]])
    zb = f32(g.normal(0.0, 2.0, (4, 3)))
    yb = f32([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]])
    cce = keras.losses.CategoricalCrossentropy()
    bce = keras.losses.BinaryCrossentropy()

    def softmax_ce(logits):
        return cce(jnp.asarray(onehot), keras.activations.softmax(logits))

    def sigmoid_bce(logits):
        return bce(jnp.asarray(yb), keras.activations.sigmoid(logits))

    return [
        {
            "name": "softmax_categorical_crossentropy",
            "classes": 5,
            "probs": floats(keras.activations.softmax(jnp.asarray(z))),
            "y_true": floats(onehot),
            "grad": floats(jax.grad(softmax_ce)(jnp.asarray(z))),
        },
        {
            "name": "sigmoid_binary_crossentropy",
            "classes": 3,
            "probs": floats(keras.activations.sigmoid(jnp.asarray(zb))),
            "y_true": floats(yb),
            "grad": floats(jax.grad(sigmoid_bce)(jnp.asarray(zb))),
        },
    ]


def metric_case(name, fn, y_pred, y_true, metric_cls, y_pred2, y_true2, **kw):
    y_pred, y_true, y_pred2, y_true2 = f32(y_pred), f32(y_true), f32(y_pred2), f32(y_true2)
    m = metric_cls(**kw)
    m.update_state(y_true, y_pred)
    m.update_state(y_true2, y_pred2)
    return {
        "name": name,
        "classes": int(y_pred.shape[-1]),
        "y_pred": floats(y_pred),
        "y_true": floats(y_true),
        "value": float(np.mean(np.asarray(fn(y_true, y_pred, **kw)))),
        "y_pred2": floats(y_pred2),
        "y_true2": floats(y_true2),
        "running": float(m.result()),
    }


def metrics():
    M = keras.metrics
    # Ties in argmax go to the first maximum; 0.5 is not above the 0.5 threshold.
    probs = [[0.1, 0.7, 0.2], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4], [0.6, 0.1, 0.3], [0.2, 0.5, 0.3]]
    onehot = [[0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]]
    probs2 = [[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]]
    onehot2 = [[1, 0, 0], [0, 1, 0]]
    sparse = [[1], [0], [2], [0], [2]]
    sparse2 = [[0], [1]]
    bin_pred = [[0.5, 0.51], [0.2, 0.9], [0.7, 0.49], [0.0, 1.0]]
    bin_true = [[0, 1], [0, 0], [1, 0], [1, 1]]
    bin_pred2 = [[0.6, 0.4]]
    bin_true2 = [[1, 1]]
    exact_pred = [[1.0, 2.0], [3.0, 0.5], [0.0, 0.0]]
    exact_true = [[1.0, 2.5], [3.0, 0.5], [1.0, 0.0]]
    g = rng(42)
    reg_pred, reg_true = g.normal(0, 1, (3, 2)), g.normal(0, 1, (3, 2))
    reg_pred2, reg_true2 = g.normal(0, 1, (2, 2)), g.normal(0, 1, (2, 2))
    from keras.src.metrics import accuracy_metrics as acc
    from keras.src.losses import losses as lf
    return [
        metric_case("accuracy", acc.accuracy, exact_pred, exact_true, M.Accuracy,
                    exact_pred[:1], exact_true[:1]),
        metric_case("binary_accuracy", acc.binary_accuracy, bin_pred, bin_true, M.BinaryAccuracy,
                    bin_pred2, bin_true2),
        metric_case("categorical_accuracy", acc.categorical_accuracy, probs, onehot,
                    M.CategoricalAccuracy, probs2, onehot2),
        metric_case("sparse_categorical_accuracy", acc.sparse_categorical_accuracy, probs, sparse,
                    M.SparseCategoricalAccuracy, probs2, sparse2),
        metric_case("mean_squared_error", lf.mean_squared_error, reg_pred, reg_true,
                    M.MeanSquaredError, reg_pred2, reg_true2),
        metric_case("mean_absolute_error", lf.mean_absolute_error, reg_pred, reg_true,
                    M.MeanAbsoluteError, reg_pred2, reg_true2),
    ]


def optimizer_case(name, cls, config, steps=3):
    g = rng(50)
    shapes = [(3, 2), (2,)]
    w0 = [f32(g.normal(0.0, 1.0, s)) for s in shapes]
    grads = [[f32(g.normal(0.0, 0.5, s)) for s in shapes] for _ in range(steps)]
    grads[0][1][0] = 0.0  # a zero gradient on the first step (Adam: 0 / (0 + eps))
    grads[1][0][2, 1] = 3.0  # one large entry, so clipnorm / clipvalue have work to do
    variables = [keras.Variable(w) for w in w0]
    opt = cls(**config)
    after = []
    for step in range(steps):
        opt.apply_gradients(zip([jnp.asarray(x) for x in grads[step]], variables))
        after.append([floats(v.numpy()) for v in variables])
    return {
        "name": name,
        "optimizer": cls.__name__,
        "config": config,
        "shapes": [list(s) for s in shapes],
        "w0": [floats(w) for w in w0],
        "grads": [[floats(x) for x in step] for step in grads],
        "after": after,
    }


def optimizers():
    O = keras.optimizers
    return [
        optimizer_case("sgd", O.SGD, {}),
        optimizer_case("sgd_momentum", O.SGD, {"learning_rate": 0.1, "momentum": 0.9}),
        optimizer_case("sgd_nesterov", O.SGD, {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
        optimizer_case("sgd_weight_decay", O.SGD, {"learning_rate": 0.1, "weight_decay": 0.05}),
        optimizer_case("sgd_clipnorm", O.SGD, {"learning_rate": 0.1, "clipnorm": 1.0}),
        optimizer_case("sgd_clipvalue", O.SGD, {"learning_rate": 0.1, "clipvalue": 0.5}),
        optimizer_case("sgd_global_clipnorm", O.SGD, {"learning_rate": 0.1, "global_clipnorm": 1.0}),
        optimizer_case("adam", O.Adam, {}),
        optimizer_case("adam_custom", O.Adam, {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
        optimizer_case("adam_amsgrad", O.Adam, {"learning_rate": 0.05, "amsgrad": True}),
        optimizer_case("adamw", O.AdamW, {}),
        optimizer_case("adamw_custom", O.AdamW, {"learning_rate": 0.05, "weight_decay": 0.1}),
        optimizer_case("rmsprop", O.RMSprop, {}),
        optimizer_case("rmsprop_centered", O.RMSprop, {"learning_rate": 0.01, "centered": True}),
        optimizer_case("rmsprop_momentum", O.RMSprop, {"learning_rate": 0.01, "momentum": 0.9}),
        optimizer_case("rmsprop_centered_momentum", O.RMSprop,
                       {"learning_rate": 0.01, "momentum": 0.5, "centered": True, "rho": 0.8}),
        optimizer_case("adagrad", O.Adagrad, {}),
        optimizer_case("adagrad_custom", O.Adagrad,
                       {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "epsilon": 1e-4}),
    ]


def regularizers():
    R = keras.regularizers
    w = f32(rng(60).normal(0.0, 1.0, (3, 4)))
    w[1, 1] = 0.0  # sign(0) = 0
    cases = [
        ("l1_default", R.L1(), "L1", {"l1": 0.01}),
        ("l2_default", R.L2(), "L2", {"l2": 0.01}),
        ("l1l2_default", R.L1L2(), "L1L2", {"l1": 0.0, "l2": 0.0}),
        ("l1_custom", R.L1(0.3), "L1", {"l1": 0.3}),
        ("l2_custom", R.L2(0.5), "L2", {"l2": 0.5}),
        ("l1l2_custom", R.L1L2(l1=0.01, l2=0.02), "L1L2", {"l1": 0.01, "l2": 0.02}),
    ]
    out = []
    for name, reg, kind, config in cases:
        value = reg(jnp.asarray(w))
        grad = jax.grad(lambda x: reg(x))(jnp.asarray(w))
        out.append({
            "name": name, "kind": kind, "config": config, "w": floats(w),
            "value": float(value), "grad": floats(grad),
        })
    return out


def constraints():
    C = keras.constraints
    g = rng(70)
    w = f32(g.normal(0.0, 1.5, (3, 4)))
    w[:, 2] = 0.0  # a zero column: norms of 0 meet Keras's epsilon
    w[:, 3] *= 0.1  # a column well inside every bound
    w3 = f32(g.normal(0.0, 1.0, (2, 3, 4)))
    cases = [
        ("max_norm_default", C.MaxNorm(), "MaxNorm", {"max_value": 2.0, "axis": 0}, w),
        ("max_norm_axis1", C.MaxNorm(max_value=1.0, axis=1), "MaxNorm", {"max_value": 1.0, "axis": 1}, w),
        ("min_max_norm_default", C.MinMaxNorm(), "MinMaxNorm",
         {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0}, w),
        ("min_max_norm_custom", C.MinMaxNorm(min_value=0.5, max_value=1.5, rate=0.5, axis=1), "MinMaxNorm",
         {"min_value": 0.5, "max_value": 1.5, "rate": 0.5, "axis": 1}, w),
        ("non_neg", C.NonNeg(), "NonNeg", {}, w),
        ("unit_norm_default", C.UnitNorm(), "UnitNorm", {"axis": 0}, w),
        ("unit_norm_axis1", C.UnitNorm(axis=1), "UnitNorm", {"axis": 1}, w),
        ("max_norm_rank3_middle_axis", C.MaxNorm(max_value=1.0, axis=1), "MaxNorm",
         {"max_value": 1.0, "axis": 1}, w3),
        ("unit_norm_rank3_last_axis", C.UnitNorm(axis=2), "UnitNorm", {"axis": 2}, w3),
    ]
    return [
        {
            "name": name, "kind": kind, "config": config, "shape": list(x.shape),
            "w": floats(x), "out": floats(c(jnp.asarray(x))),
        }
        for name, c, kind, config, x in cases
    ]


def generate():
    return {
        "losses": losses(),
        "fused": fused(),
        "metrics": metrics(),
        "optimizers": optimizers(),
        "regularizers": regularizers(),
        "constraints": constraints(),
    }
