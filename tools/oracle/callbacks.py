"""Keras's own callbacks on recorded histories: each case runs a real `model.fit` (a tiny
Dense model, SGD, MSE, no shuffling) whose first callback overwrites the logged values with
a fixed sequence (the logs dict is shared, so every later callback sees them), then records
what Keras's callbacks decided: how many epochs ran, EarlyStopping's stopped epoch and which
epoch's weights were restored, the learning rate after each epoch, the checkpoint files
written, the CSV file, the History. kiln's tests feed the same sequences through kiln's
callbacks (tests/callbacks.rs) and must decide the same."""
import os
import tempfile

import keras
import numpy as np

from oracle._util import floats

C = keras.callbacks


def f32(v):
    """`v` as fit logs it: a float32 result widened to a Python float."""
    return float(np.float32(v))


class Overwrite(C.Callback):
    """Replaces logged values with fixed sequences: `epoch[k][e]` at the end of epoch `e`
    (`val_` keys only in epochs that validated), `batch[k][i]` at the end of the `i`-th
    batch of the whole run."""

    def __init__(self, epoch=None, batch=None):
        super().__init__()
        self.epoch_values = epoch or {}
        self.batch_values = batch or {}
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        for k, seq in self.batch_values.items():
            logs[k] = f32(seq[self.batches])
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        for k, seq in self.epoch_values.items():
            # a val_ value only in epochs that validated (validation_freq)
            if not k.startswith("val_") or "val_loss" in logs:
                logs[k] = f32(seq[epoch])


class Probe(C.Callback):
    """Records, last in the list, the learning rate each epoch starts and ends with, the
    weights at each epoch's end, and the batches run."""

    def __init__(self):
        super().__init__()
        self.lr_begin, self.lr_end, self.weights, self.batches = [], [], [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.lr_begin.append(float(np.float32(self.model.optimizer.learning_rate)))

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.lr_end.append(float(np.float32(self.model.optimizer.learning_rate)))
        self.weights.append([w.copy() for w in self.model.get_weights()])


def run(name, callbacks, epoch=None, batch=None, epochs=8, extra=None, metrics=(), **fit):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=0.1), "mse", metrics=list(metrics))
    g = np.random.default_rng(3)
    x = g.normal(size=(8, 2)).astype(np.float32)
    y = g.normal(size=(8, 1)).astype(np.float32)
    probe = Probe()
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        validation_data=(x, y),
        callbacks=[Overwrite(epoch, batch)] + callbacks + [probe],
        **fit,
    )
    final = model.get_weights()
    restored = None
    for e, ws in enumerate(probe.weights):
        if all(np.array_equal(a, b) for a, b in zip(ws, final)):
            restored = e
            break
    case = {
        "name": name,
        "epochs": epochs,
        "metrics": list(metrics),
        "epoch_values": {k: floats(v) for k, v in (epoch or {}).items()},
        "batch_values": {k: floats(v) for k, v in (batch or {}).items()},
        "epochs_run": len(probe.weights),
        "batches_run": probe.batches,
        "final_weights_from_epoch": restored,
        "lr_begin": probe.lr_begin,
        "lr_end": probe.lr_end,
        "history": {k: floats(vs) for k, vs in history.history.items()},
    }
    case.update(extra(callbacks) if extra else {})
    return case


VAL = {
    # improves, plateaus (ties included), improves a little, then worsens
    "falls_then_rises": [1.0, 0.8, 0.8, 0.79, 0.85, 0.9, 0.7, 0.95, 0.96, 0.97],
    "noisy": [0.5, 0.6, 0.45, 0.47, 0.46, 0.44, 0.5, 0.43, 0.6, 0.61],
    "flat": [0.3] * 10,
}
ACC = [0.5, 0.6, 0.6, 0.55, 0.7, 0.69, 0.68, 0.9, 0.5, 0.5]


def early_stopping_cases():
    def es(name, values, monitor="val_loss", **kw):
        cb = C.EarlyStopping(monitor=monitor, **kw)
        return run(
            name,
            [cb],
            epoch={monitor: values},
            epochs=10,
            # Keras's "auto" mode finds accuracy's direction among the compiled metrics
            metrics=["accuracy"] if "accuracy" in monitor else [],
            extra=lambda cbs: {
                "args": kw,
                "monitor": monitor,
                "stopped_epoch": cbs[0].stopped_epoch,
                "best_epoch": getattr(cbs[0], "best_epoch", None),
            },
        )

    return [
        es("default", VAL["falls_then_rises"]),
        es("patience_2", VAL["falls_then_rises"], patience=2),
        es("patience_2_restore", VAL["falls_then_rises"], patience=2, restore_best_weights=True),
        es("min_delta", VAL["noisy"], patience=2, min_delta=0.02),
        es("min_delta_restore", VAL["noisy"], patience=2, min_delta=0.02, restore_best_weights=True),
        es("mode_max", VAL["noisy"], patience=1, mode="max"),
        es("baseline_unmet", VAL["noisy"], patience=3, baseline=0.44),
        es("baseline_met", VAL["noisy"], patience=1, baseline=0.55),
        es("start_from_epoch", VAL["falls_then_rises"], patience=1, start_from_epoch=4),
        es(
            "start_from_epoch_restore",
            VAL["noisy"],
            patience=2,
            start_from_epoch=3,
            restore_best_weights=True,
        ),
        es("flat", VAL["flat"], patience=2),
        es("flat_restore", VAL["flat"], patience=3, restore_best_weights=True),
        es("accuracy_auto_max", ACC, monitor="val_accuracy", patience=2, restore_best_weights=True),
        es("noisy_patience_4", VAL["noisy"], patience=4, restore_best_weights=True),
    ]


def reduce_lr_cases():
    def plateau(name, values, **kw):
        return run(
            name,
            [C.ReduceLROnPlateau(**kw)],
            epoch={"val_loss": values},
            epochs=10,
            extra=lambda cbs: {"args": kw},
        )

    return [
        plateau("factor_half_patience_1", VAL["noisy"], factor=0.5, patience=1),
        plateau("patience_2_cooldown_1", VAL["flat"], factor=0.5, patience=2, cooldown=1),
        plateau("min_lr", VAL["flat"], factor=0.1, patience=1, min_lr=0.0005),
        plateau("min_delta", VAL["noisy"], factor=0.2, patience=1, min_delta=0.02),
        plateau("defaults", VAL["falls_then_rises"]),
        plateau("cooldown_3", VAL["falls_then_rises"], factor=0.3, patience=1, cooldown=3),
    ]


def scheduler_cases():
    return [
        run(
            "halve_after_2",
            [C.LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5)],
            epochs=6,
        ),
        run(
            "exp_decay",
            [C.LearningRateScheduler(lambda epoch, lr: 0.1 * float(np.exp(-0.3 * epoch)))],
            epochs=6,
        ),
    ]


def checkpoint_cases():
    cases = []
    specs = [
        ("every_epoch", "w-{epoch:02d}.weights.h5", {}),
        ("best_only", "best-{epoch}-{val_loss:.4f}.weights.h5", {"save_best_only": True}),
        (
            "best_only_max",
            "m{epoch:03d}_{val_loss:.2f}.weights.h5",
            {"save_best_only": True, "mode": "max"},
        ),
        (
            "best_only_threshold",
            "t{epoch}.weights.h5",
            {"save_best_only": True, "initial_value_threshold": 0.46},
        ),
    ]
    for name, pattern, kw in specs:
        with tempfile.TemporaryDirectory() as d:
            cb = C.ModelCheckpoint(os.path.join(d, pattern), save_weights_only=True, **kw)
            case = run(name, [cb], epoch={"val_loss": VAL["noisy"]}, epochs=10)
            case["args"] = kw
            case["filepath"] = pattern
            case["saved"] = sorted(os.listdir(d))
            cases.append(case)
    return cases


def csv_cases():
    cases = []
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "log.csv")
        values = {"loss": [0.5, 0.25, 1e-05, 3.0], "val_loss": [0.75, 0.123456789, 2.5e-7, 1e16]}
        case = run("comma", [C.CSVLogger(path)], epoch=values, epochs=4)
        case["text"] = open(path, "rb").read().decode()
        cases.append(case)
        case = run("append_semicolon", [C.CSVLogger(path, separator=";", append=True)], epoch=values, epochs=2)
        case["text"] = open(path, "rb").read().decode()
        cases.append(case)
        path = os.path.join(d, "novalidation.csv")
        # without validation data: CSVLogger adds val_ columns of "NA"
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(learning_rate=0.1), "mse")
        x = np.ones((4, 2), np.float32)
        model.fit(
            x,
            x[:, :1],
            epochs=2,
            verbose=0,
            callbacks=[Overwrite({"loss": [0.5, 0.25]}), C.CSVLogger(path)],
        )
        cases.append({"name": "no_validation", "epoch_values": {"loss": [0.5, 0.25]}, "text": open(path, "rb").read().decode()})
    return cases


def nan_cases():
    nan = float("nan")
    return [
        run(
            "terminate_on_nan",
            [C.TerminateOnNaN()],
            batch={"loss": [0.5, 0.4, 0.3, nan, 0.2, 0.1, 0.1, 0.1]},
            epochs=4,
        ),
        run(
            "terminate_on_inf",
            [C.TerminateOnNaN()],
            batch={"loss": [0.5, float("inf"), 0.3, 0.2, 0.2, 0.1, 0.1, 0.1]},
            epochs=4,
        ),
    ]


def history_cases():
    return [
        run(
            "validation_freq_2",
            [],
            epoch={"loss": [0.9, 0.8, 0.7, 0.6, 0.5], "val_loss": [0.95, 0.85, 0.75, 0.65, 0.55]},
            epochs=5,
            validation_freq=2,
        ),
        run(
            "initial_epoch_2",
            [C.EarlyStopping(monitor="loss", patience=1)],
            epoch={"loss": [9.0, 9.0, 0.7, 0.8, 0.9, 1.0]},
            epochs=6,
            initial_epoch=2,
        ),
    ]


def generate():
    return {
        "early_stopping": early_stopping_cases(),
        "reduce_lr": reduce_lr_cases(),
        "scheduler": scheduler_cases(),
        "checkpoint": checkpoint_cases(),
        "csv": csv_cases(),
        "nan": nan_cases(),
        "history": history_cases(),
    }
