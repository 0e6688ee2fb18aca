"""Keras 3 (JAX) losses and metrics that kiln adds for issue 12.

- losses: `keras.losses.<Class>(**config)(y_true, y_pred)` with the default reduction, and
  `jax.grad` of that call with respect to `y_pred`. Edge cases: exact zeros, predictions on
  and beyond the clip bounds (KLDivergence's [1e-7, 1], MSLE's max(p, 1e-7)), negative
  values for Poisson/MSLE/MAPE, ties (Huber |e| = delta, hinge margins of exactly 0,
  categorical-hinge maxima that tie), hinge labels that are 0/1 (mapped to -1/1) and ones
  that are not, a zero vector for CosineSimilarity, and label smoothing.
- metrics: a `keras.metrics` object after three `update_state` calls on seeded batches:
  its `result()` and its `name` (the key Keras logs it under).
- steps: `Dense(3, sigmoid)` compiled with `SGD(0.1)` and each loss, one `train_on_batch`:
  the reported loss and the weights afterwards.
"""
import jax
import jax.numpy as jnp
import keras
import numpy as np

from oracle._util import floats, rng

F32 = np.float32
L = keras.losses
M = keras.metrics


def f32(a):
    return np.asarray(a, dtype=F32)


def loss_case(name, loss, config, y_pred, y_true):
    y_pred, y_true = f32(y_pred), f32(y_true)

    def f(p):
        return loss(jnp.asarray(y_true), p)

    value = f(jnp.asarray(y_pred))
    grad = jax.grad(f)(jnp.asarray(y_pred))
    return {
        "name": name,
        "loss": type(loss).__name__,
        "config": config,
        "classes": int(y_pred.shape[-1]),
        "y_pred": floats(y_pred),
        "y_true": floats(y_true),
        "value": floats(value),
        "grad": floats(grad),
    }


def losses():
    g = rng(120)
    reg_p = g.normal(0.0, 1.0, (4, 3))
    reg_t = g.normal(0.0, 1.0, (4, 3))
    huber_p = reg_p.copy()
    huber_p[0, 0] = reg_t[0, 0] + 1.0  # |e| == delta exactly: quadratic side
    huber_p[0, 1] = reg_t[0, 1]  # e == 0
    huber_p[1, 0] = reg_t[1, 0] - 3.0
    prob_p = g.uniform(0.0, 1.0, (4, 3))
    prob_p[0] = [0.0, 1.0, 1e-8]
    prob_p[1, 0] = 1e-7
    prob_t = g.uniform(0.0, 1.0, (4, 3))
    prob_t[0, 1] = 0.0
    prob_t[2] = [1.0, 0.0, 0.0]
    pois_p = g.uniform(0.0, 3.0, (4, 3))
    pois_p[0, 0] = 0.0
    pois_t = g.integers(0, 4, (4, 3)).astype(F32)
    msle_p = reg_p.copy() * 2.0
    msle_p[0, 0] = 1e-7
    msle_p[0, 1] = 0.0
    msle_t = np.abs(reg_t)
    msle_t[1, 1] = -0.5
    mape_t = reg_t.copy()
    mape_t[0, 0] = 0.0
    mape_t[0, 1] = 1e-9
    mape_p = reg_p.copy()
    mape_p[1, 1] = mape_t[1, 1]  # zero error: JAX's abs slope 1
    cos_p = reg_p.copy()
    cos_t = reg_t.copy()
    cos_t[3] = 0.0  # a zero label vector
    hinge_t01 = g.integers(0, 2, (4, 3)).astype(F32)
    hinge_p = reg_p.copy()
    hinge_p[0, 0] = 1.0 if hinge_t01[0, 0] == 1 else -1.0  # margin exactly 0
    hinge_tpm = 2 * hinge_t01 - 1
    hinge_tpm[1, 2] = 0.5  # not binary: used as is
    ch_t = np.eye(4, dtype=F32)[[1, 0, 3, 2]]
    ch_p = f32([[0.3, 0.2, 0.3, 0.1], [-0.5, -0.2, -0.1, -0.3], [1.0, 2.0, 0.5, 4.0],
                [0.7, 0.7, 0.1, 0.7]])
    bin_p = prob_p.copy()
    bin_t = hinge_t01.copy()
    logits = reg_p * 3.0
    cat_p = g.uniform(0.0, 1.0, (4, 3))
    cat_p[1] = [1.0, 0.0, 0.0]
    cat_t = np.eye(3, dtype=F32)[[0, 2, 1, 1]]
    cases = [
        loss_case("huber", L.Huber(), {"delta": 1.0}, huber_p, reg_t),
        loss_case("huber_delta_0_5", L.Huber(delta=0.5), {"delta": 0.5}, huber_p, reg_t),
        loss_case("log_cosh", L.LogCosh(), {}, reg_p * 10.0, reg_t),
        loss_case("kl_divergence", L.KLDivergence(), {}, prob_p, prob_t),
        loss_case("poisson", L.Poisson(), {}, pois_p, pois_t),
        loss_case("poisson_negative", L.Poisson(), {}, reg_p, pois_t),
        loss_case("cosine_similarity", L.CosineSimilarity(), {"axis": -1}, cos_p, cos_t),
        loss_case("cosine_similarity_zero_pred", L.CosineSimilarity(), {"axis": -1},
                  np.concatenate([cos_p[:3], np.zeros((1, 3))]), reg_t),
        loss_case("hinge_01", L.Hinge(), {}, hinge_p, hinge_t01),
        loss_case("hinge_pm1", L.Hinge(), {}, hinge_p, hinge_tpm),
        loss_case("squared_hinge_01", L.SquaredHinge(), {}, hinge_p, hinge_t01),
        loss_case("squared_hinge_pm1", L.SquaredHinge(), {}, hinge_p, hinge_tpm),
        loss_case("categorical_hinge", L.CategoricalHinge(), {}, ch_p, ch_t),
        loss_case("msle", L.MeanSquaredLogarithmicError(), {}, msle_p, msle_t),
        loss_case("mape", L.MeanAbsolutePercentageError(), {}, mape_p, mape_t),
        loss_case("bce_smooth", L.BinaryCrossentropy(label_smoothing=0.1),
                  {"from_logits": False, "label_smoothing": 0.1}, bin_p, bin_t),
        loss_case("bce_smooth_logits", L.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
                  {"from_logits": True, "label_smoothing": 0.2}, logits, bin_t),
        loss_case("cce_smooth", L.CategoricalCrossentropy(label_smoothing=0.1),
                  {"from_logits": False, "label_smoothing": 0.1}, cat_p, cat_t),
        loss_case("cce_smooth_logits",
                  L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.3),
                  {"from_logits": True, "label_smoothing": 0.3}, logits, cat_t),
    ]
    return cases


def metric_case(name, metric, config, batches, classes):
    for p, t in batches:
        metric.update_state(f32(t), f32(p))
    result = np.asarray(metric.result(), dtype=F32).reshape(-1)
    return {
        "name": name,
        "metric": type(metric).__name__,
        "config": config,
        "log_name": metric.name,
        "classes": classes,
        "batches": [{"y_pred": floats(p), "y_true": floats(t)} for p, t in batches],
        "result": floats(result),
    }


def metrics():
    g = rng(121)

    def binary(rows, cols):
        p = g.uniform(0.0, 1.0, (rows, cols)).astype(F32)
        p[0, 0] = 0.5  # exactly on the default threshold: not positive
        t = g.integers(0, 2, (rows, cols)).astype(F32)
        return p, t

    bin_batches = [binary(6, 1), binary(5, 1), binary(7, 1)]
    multi_batches = [binary(6, 4), binary(5, 4), binary(4, 4)]

    def onehot(rows, cols):
        p = g.uniform(0.0, 1.0, (rows, cols)).astype(F32)
        p[1, :] = 0.25  # a row of ties
        return p, np.eye(cols, dtype=F32)[g.integers(0, cols, rows)]

    cat_batches = [onehot(6, 7), onehot(5, 7), onehot(4, 7)]
    sparse_batches = [(p, f32(np.argmax(t, axis=-1)[:, None])) for p, t in cat_batches]
    reg_batches = [(g.normal(size=(4, 3)), g.normal(size=(4, 3))) for _ in range(3)]
    auc_batches = [binary(20, 1), binary(15, 1), binary(25, 1)]
    auc_batches[0][0][1, 0] = 1.0
    auc_batches[0][0][2, 0] = 0.0
    f1_batches = [onehot(8, 4), onehot(6, 4), onehot(5, 4)]
    f1_batches[0][0][2, :] = 0.0  # an all-zero row: no prediction passes |p| > 1e-9
    return [
        metric_case("precision", M.Precision(), {}, bin_batches, 1),
        metric_case("recall", M.Recall(), {}, bin_batches, 1),
        metric_case("precision_multi", M.Precision(), {}, multi_batches, 4),
        metric_case("precision_thresholds", M.Precision(thresholds=[0.3, 0.5, 0.8]),
                    {"thresholds": [0.3, 0.5, 0.8]}, multi_batches, 4),
        metric_case("recall_thresholds", M.Recall(thresholds=[0.3, 0.7]),
                    {"thresholds": [0.3, 0.7]}, multi_batches, 4),
        metric_case("precision_top_k", M.Precision(top_k=2), {"top_k": 2}, multi_batches, 4),
        metric_case("recall_top_k", M.Recall(top_k=1), {"top_k": 1}, multi_batches, 4),
        metric_case("precision_class_id", M.Precision(class_id=2), {"class_id": 2},
                    multi_batches, 4),
        metric_case("recall_class_id", M.Recall(class_id=1), {"class_id": 1}, multi_batches, 4),
        metric_case("auc", M.AUC(), {}, auc_batches, 1),
        metric_case("auc_pr", M.AUC(curve="PR"), {"curve": "PR"}, auc_batches, 1),
        metric_case("auc_multi", M.AUC(num_thresholds=50), {"num_thresholds": 50},
                    multi_batches, 4),
        metric_case("auc_pr_minoring", M.AUC(curve="PR", summation_method="minoring"),
                    {"curve": "PR", "summation_method": "minoring"}, auc_batches, 1),
        metric_case("auc_roc_majoring", M.AUC(summation_method="majoring"),
                    {"summation_method": "majoring"}, auc_batches, 1),
        metric_case("top_k", M.TopKCategoricalAccuracy(), {"k": 5}, cat_batches, 7),
        metric_case("top_k_2", M.TopKCategoricalAccuracy(k=2), {"k": 2}, cat_batches, 7),
        metric_case("sparse_top_k", M.SparseTopKCategoricalAccuracy(), {"k": 5},
                    sparse_batches, 7),
        metric_case("sparse_top_k_1", M.SparseTopKCategoricalAccuracy(k=1), {"k": 1},
                    sparse_batches, 7),
        metric_case("mse", M.MeanSquaredError(), {}, reg_batches, 3),
        metric_case("mae", M.MeanAbsoluteError(), {}, reg_batches, 3),
        metric_case("rmse", M.RootMeanSquaredError(), {}, reg_batches, 3),
        metric_case("f1", M.F1Score(), {"average": None}, f1_batches, 4),
        metric_case("f1_micro", M.F1Score(average="micro"), {"average": "micro"}, f1_batches, 4),
        metric_case("f1_macro", M.F1Score(average="macro", threshold=0.5),
                    {"average": "macro", "threshold": 0.5}, f1_batches, 4),
        metric_case("f1_weighted", M.F1Score(average="weighted"), {"average": "weighted"},
                    f1_batches, 4),
    ]


STEP_LOSSES = [
    ("huber", lambda: L.Huber(), "onehot"),
    ("log_cosh", lambda: L.LogCosh(), "onehot"),
    ("kl_divergence", lambda: L.KLDivergence(), "dist"),
    ("poisson", lambda: L.Poisson(), "counts"),
    ("cosine_similarity", lambda: L.CosineSimilarity(), "normal"),
    ("hinge", lambda: L.Hinge(), "binary"),
    ("squared_hinge", lambda: L.SquaredHinge(), "binary"),
    ("categorical_hinge", lambda: L.CategoricalHinge(), "onehot"),
    ("msle", lambda: L.MeanSquaredLogarithmicError(), "counts"),
    ("mape", lambda: L.MeanAbsolutePercentageError(), "normal"),
    ("bce_smooth", lambda: L.BinaryCrossentropy(label_smoothing=0.1), "binary"),
    ("cce_smooth", lambda: L.CategoricalCrossentropy(label_smoothing=0.1), "onehot"),
]


def steps():
    out = []
    for i, (name, make, kind) in enumerate(STEP_LOSSES):
        g = rng(200 + i)
        x = g.normal(0.0, 1.0, (5, 4)).astype(F32)
        if kind == "onehot":
            t = np.eye(3, dtype=F32)[g.integers(0, 3, 5)]
        elif kind == "dist":
            t = g.uniform(0.0, 1.0, (5, 3)).astype(F32)
            t /= t.sum(axis=-1, keepdims=True)
        elif kind == "counts":
            t = g.integers(0, 3, (5, 3)).astype(F32)
        elif kind == "binary":
            t = g.integers(0, 2, (5, 3)).astype(F32)
        else:
            t = g.normal(0.0, 1.0, (5, 3)).astype(F32)
        kernel = g.normal(0.0, 0.5, (4, 3)).astype(F32)
        bias = g.normal(0.0, 0.1, (3,)).astype(F32)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
        model.layers[0].set_weights([kernel, bias])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=make())
        value = model.train_on_batch(x, t)
        k_after, b_after = model.layers[0].get_weights()
        out.append({
            "name": name,
            "lr": 0.1,
            "weights": {"dense/kernel": {"shape": [4, 3], "values": floats(kernel)},
                        "dense/bias": {"shape": [3], "values": floats(bias)}},
            "x": floats(x),
            "t": floats(t),
            "loss": float(value),
            "after": {"dense/kernel": floats(k_after), "dense/bias": floats(b_after)},
        })
    return out


def generate():
    return {"losses": losses(), "metrics": metrics(), "steps": steps()}
