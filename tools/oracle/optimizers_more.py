"""Learning-rate schedules, the optimizers past the first five, and what Keras's base
optimizer adds to every optimizer (clipping, schedules, EMA), from Keras 3 on JAX.

- `schedules`: each `keras.optimizers.schedules` class called at steps 0..`last` (int32
  steps, as the optimizer's `iterations`), at several settings including every default.
  The steps cover each kind's boundaries: `decay_steps` and its multiples (staircase,
  cycle, restarts), the piecewise boundaries and the steps on either side, the end of a
  warmup.
- `steps`: the Dense(4, tanh) -> Dense(3, softmax) model of tools/oracle/training.py (same
  start weights and batch for seed 31), compiled with an optimizer and
  "categorical_crossentropy", then 5 `train_on_batch` calls: each call's loss, the weights
  after it, and `optimizer.learning_rate` after it (a schedule's value at the new
  iteration count, which the next step uses). Keras evaluates the schedule at
  `iterations` before `apply` increments it, so step `t` (from 1) uses `schedule(t - 1)`.
- `fit`: the same model and batch, `model.fit(epochs=3, batch_size=5, shuffle=False)`
  (one step per epoch), then the weights. With `use_ema`, Keras's `fit` ends with
  `optimizer.finalize_variable_values`, writing the moving averages over the weights.
"""
import keras
import numpy as np

from oracle._util import floats
from oracle.training import BATCH, build, dense_softmax, labels, paths, snapshot

F32 = np.float32
O = keras.optimizers
S = keras.optimizers.schedules

STEPS = 5


def schedule_case(name, schedule, last):
    steps = list(range(last + 1))
    values = [float(schedule(np.int32(s))) for s in steps]
    return {"name": name, "steps": steps, "values": floats(values)}


def schedule_cases():
    return [
        schedule_case("exponential", S.ExponentialDecay(0.1, 4, 0.5), 13),
        schedule_case("exponential_staircase", S.ExponentialDecay(0.1, 4, 0.5, staircase=True), 13),
        schedule_case("inverse_time", S.InverseTimeDecay(0.1, 4, 0.5), 13),
        schedule_case("inverse_time_staircase", S.InverseTimeDecay(0.1, 4, 0.5, staircase=True), 13),
        schedule_case("piecewise", S.PiecewiseConstantDecay([3, 7], [0.1, 0.05, 0.01]), 10),
        schedule_case("piecewise_one_boundary", S.PiecewiseConstantDecay([0], [1.0, 0.5]), 3),
        schedule_case("polynomial_default", S.PolynomialDecay(0.1, 6), 9),
        schedule_case("polynomial_power_2", S.PolynomialDecay(0.1, 6, end_learning_rate=0.01, power=2.0), 9),
        schedule_case("polynomial_cycle", S.PolynomialDecay(0.1, 4, end_learning_rate=0.01, power=0.5, cycle=True), 17),
        schedule_case("cosine_default", S.CosineDecay(0.1, 8), 11),
        schedule_case("cosine_alpha", S.CosineDecay(0.1, 8, alpha=0.1), 11),
        schedule_case("cosine_warmup", S.CosineDecay(0.0, 8, alpha=0.2, warmup_target=0.1, warmup_steps=4), 15),
        schedule_case("cosine_warmup_from_nonzero", S.CosineDecay(0.01, 5, warmup_target=0.05, warmup_steps=3), 10),
        schedule_case("cosine_restarts_default", S.CosineDecayRestarts(0.1, 3), 25),
        schedule_case("cosine_restarts_t_mul_1", S.CosineDecayRestarts(0.1, 4, t_mul=1.0, m_mul=0.5, alpha=0.1), 17),
        schedule_case("cosine_restarts_m_mul", S.CosineDecayRestarts(0.1, 2, t_mul=1.5, m_mul=0.8, alpha=0.05), 25),
    ]


def start(seed=31):
    model, weights, g = build(dense_softmax, seed)
    x = g.normal(0.0, 1.0, size=(BATCH, 6)).astype(F32)
    y = labels("onehot", g, 3)
    return model, weights, x, y


def steps_case(name, make):
    model, weights, x, y = start()
    optimizer = make()
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    losses, after, rates = [], [], []
    for _ in range(STEPS):
        losses.append(float(model.train_on_batch(x, y)))
        after.append(snapshot(model))
        rates.append(float(optimizer.learning_rate))
    assert int(optimizer.iterations) == STEPS
    return {
        "name": name,
        "optimizer": optimizer.__class__.__name__,
        "weight_names": paths(model),
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "losses": losses,
        "after": after,
        "learning_rates": rates,
    }


def steps_cases():
    return [
        # The new optimizers, at Keras's defaults and at larger steps with every option.
        steps_case("nadam_default", lambda: O.Nadam()),
        steps_case("nadam_lr_0.05", lambda: O.Nadam(learning_rate=0.05, beta_2=0.99, weight_decay=0.1)),
        steps_case("adamax_default", lambda: O.Adamax()),
        steps_case("adamax_lr_0.05", lambda: O.Adamax(learning_rate=0.05, beta_1=0.8, beta_2=0.9)),
        steps_case("adadelta_default", lambda: O.Adadelta()),
        steps_case("adadelta_lr_1", lambda: O.Adadelta(learning_rate=1.0, rho=0.9, epsilon=1e-6)),
        steps_case("ftrl_default", lambda: O.Ftrl()),
        steps_case("ftrl_every_option", lambda: O.Ftrl(
            learning_rate=0.2, learning_rate_power=-0.7, initial_accumulator_value=0.05,
            l1_regularization_strength=0.01, l2_regularization_strength=0.02,
            l2_shrinkage_regularization_strength=0.03, beta=0.5)),
        steps_case("ftrl_l1_zeroes", lambda: O.Ftrl(learning_rate=0.1, l1_regularization_strength=0.5)),
        steps_case("lion_default", lambda: O.Lion()),
        steps_case("lion_lr_0.01", lambda: O.Lion(learning_rate=0.01, beta_1=0.8, beta_2=0.95, weight_decay=0.5)),
        steps_case("lamb_default", lambda: O.Lamb()),
        steps_case("lamb_lr_0.05", lambda: O.Lamb(learning_rate=0.05, weight_decay=0.1)),
        # Clipping, on old and new optimizers.
        steps_case("sgd_clipnorm", lambda: O.SGD(learning_rate=0.5, clipnorm=0.1)),
        steps_case("adam_clipvalue", lambda: O.Adam(learning_rate=0.01, clipvalue=0.02)),
        steps_case("rmsprop_global_clipnorm", lambda: O.RMSprop(learning_rate=0.01, global_clipnorm=0.1)),
        steps_case("nadam_clipnorm", lambda: O.Nadam(learning_rate=0.01, clipnorm=0.05)),
        steps_case("lamb_global_clipnorm", lambda: O.Lamb(learning_rate=0.01, global_clipnorm=0.2)),
        steps_case("lion_clipvalue", lambda: O.Lion(learning_rate=0.01, clipvalue=0.01)),
        # Schedules in the optimizers (weight decay uses the scheduled rate too).
        steps_case("sgd_exponential", lambda: O.SGD(learning_rate=S.ExponentialDecay(0.5, 2, 0.5))),
        # Adam at rates below 0.01: kiln forms `1 - beta_2` in float32, Keras in double (see
        # kiln::optimizers), and larger Adam steps swing weights across zero, where that
        # 1e-5 relative difference grows past the tests' tolerance within 5 steps.
        steps_case("adam_piecewise", lambda: O.Adam(learning_rate=S.PiecewiseConstantDecay([1, 3], [0.01, 0.005, 0.001]))),
        steps_case("adamw_inverse_time", lambda: O.AdamW(learning_rate=S.InverseTimeDecay(0.01, 1, 0.5), weight_decay=0.2)),
        steps_case("rmsprop_polynomial", lambda: O.RMSprop(learning_rate=S.PolynomialDecay(0.01, 3, power=2.0))),
        steps_case("adagrad_cosine_restarts", lambda: O.Adagrad(learning_rate=S.CosineDecayRestarts(0.5, 2))),
        steps_case("lion_cosine_warmup", lambda: O.Lion(learning_rate=S.CosineDecay(0.0, 3, warmup_target=0.02, warmup_steps=2))),
        steps_case("ftrl_exponential", lambda: O.Ftrl(learning_rate=S.ExponentialDecay(0.3, 1, 0.7), beta=0.2)),
        # Moving averages: without overwriting (train_on_batch leaves the weights alone),
        # and overwriting every 2 and 3 steps.
        steps_case("adam_ema", lambda: O.Adam(learning_rate=0.01, use_ema=True)),
        steps_case("sgd_momentum_ema_every_2", lambda: O.SGD(
            learning_rate=0.3, momentum=0.9, use_ema=True, ema_momentum=0.5,
            ema_overwrite_frequency=2)),
        steps_case("lamb_ema_every_3", lambda: O.Lamb(
            learning_rate=0.05, use_ema=True, ema_momentum=0.7, ema_overwrite_frequency=3)),
        steps_case("adadelta_ema_every_1", lambda: O.Adadelta(
            learning_rate=1.0, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=1)),
    ]


def fit_case(name, make, epochs=3):
    model, weights, x, y = start()
    optimizer = make()
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    history = model.fit(x, y, epochs=epochs, batch_size=BATCH, shuffle=False, verbose=0)
    return {
        "name": name,
        "weight_names": paths(model),
        "weights": weights,
        "x": floats(x),
        "y": floats(y),
        "epochs": epochs,
        "losses": floats(history.history["loss"]),
        "after": snapshot(model),
    }


def fit_cases():
    return [
        fit_case("nadam", lambda: O.Nadam(learning_rate=0.05)),
        fit_case("lamb", lambda: O.Lamb(learning_rate=0.05)),
        fit_case("adam_ema", lambda: O.Adam(learning_rate=0.05, use_ema=True, ema_momentum=0.8)),
        fit_case("lion_ema_every_2", lambda: O.Lion(
            learning_rate=0.01, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2)),
    ]


def generate():
    return {
        "schedules": schedule_cases(),
        "steps": steps_cases(),
        "fit": fit_cases(),
    }
