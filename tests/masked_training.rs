//! Training a model whose output carries a Keras mask, against Keras 3 (golden data:
//! tools/oracle/masked_training.py). Keras weights each output position's loss by the mask
//! (`total / valid` on the unmasked positions, 0 on the masked ones, merged with
//! `sample_weight`), so the loss is the mean over the unmasked positions, and 0 for a batch
//! with none; `evaluate` and validation leave masked positions out of the metrics too, while
//! the training metrics of Keras on JAX count them (its train step hands the metrics outputs
//! without their mask).
//!
//! Two models, each with and without sample weights: `Masking -> LSTM -> Dense` with mean
//! squared error and SGD, and `Embedding(mask_zero) -> GRU -> TimeDistributed(Dense) ->
//! softmax` with sparse categorical cross-entropy and Adam. Per case: one `train_on_batch`
//! (with sample weights: a one-batch `fit`, the same step), a two-epoch `fit` in batches of
//! 3 with validation data (also split across 2 and 3 threads), `evaluate` in Keras's
//! batches of 32, and a step on a fully masked batch.

mod common;
use common::{assert_close, floats, golden};
use kiln::optimizers::Optimizer;
use kiln::{Adam, FitOptions, Loss, Metric, Model, Sgd, Trainable, Trainer};
use serde_json::Value;

kiln::model! {
    MaskedLstm = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        LSTM(4, return_sequences = True),
        Dense(2),
    ]);
    MaskedGru = Sequential([
        Input(shape = (6,)),
        Embedding(10, 4, mask_zero = True),
        GRU(5, return_sequences = True),
        TimeDistributed(Dense(3)),
        Activation("softmax"),
    ]);
}

/// Two epochs through recurrent layers in float32, summed in another order than XLA's.
const RTOL: f32 = 1e-4;
const ATOL: f32 = 2e-5;

fn cases() -> Vec<Value> {
    golden("masked_training")["cases"]
        .as_array()
        .expect("cases")
        .clone()
}

fn name(case: &Value) -> &str {
    case["name"].as_str().expect("name")
}

/// kiln's log name of a Keras log key (`compile(metrics=["mae"])` logs `mae` in Keras,
/// `mean_absolute_error` in kiln).
fn kiln_key(key: &str) -> String {
    key.replace("mae", "mean_absolute_error")
}

/// A trainer of the case's model from Keras's start weights, with its loss and metrics.
fn trainer<M: Trainable, O: Optimizer>(case: &Value, optimizer: O) -> Trainer<M, O> {
    let mut model = M::new(0);
    for (weight, values) in case["weights"].as_object().expect("weights") {
        model
            .set_weight(weight, &floats(values))
            .unwrap_or_else(|e| panic!("{}: set_weight({weight}): {e}", name(case)));
    }
    let loss = Loss::from_name(case["loss"].as_str().expect("loss")).expect("known loss");
    let metrics: Vec<Metric> = case["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| match m.as_str().expect("metric name") {
            "accuracy" => Metric::Accuracy,
            other => Metric::from_name(other).expect("known metric"),
        })
        .collect();
    model.compile(optimizer, loss).with_metrics(&metrics)
}

fn assert_weights<M: Model>(what: &str, model: &M, expected: &Value) {
    for weight in M::WEIGHT_NAMES {
        assert_close(
            &format!("{what}: {weight}"),
            &model.get_weight(weight).expect("get_weight"),
            &floats(&expected[*weight]),
            RTOL,
            ATOL,
        );
    }
}

/// `logs` (Keras's `return_dict`) against kiln's loss and metrics.
fn assert_logs(what: &str, logs: &kiln::Logs, expected: &Value) {
    for (key, value) in expected.as_object().expect("logs") {
        let actual = logs
            .get(&kiln_key(key))
            .unwrap_or_else(|| panic!("{what}: kiln logs no {key}"));
        let value = value.as_f64().expect("number") as f32;
        assert_close(&format!("{what}: {key}"), &[actual], &[value], RTOL, ATOL);
    }
}

fn sample_weight(case: &Value) -> Option<Vec<f32>> {
    case.get("sample_weight").map(floats)
}

/// One step on the whole training set: Keras's `train_on_batch`.
fn train_on_batch<M: Trainable + Send + Sync, O: Optimizer>(case: &Value, optimizer: O) {
    let what = format!("{}: train_on_batch", name(case));
    let mut trainer = trainer::<M, O>(case, optimizer);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let logs = match sample_weight(case) {
        None => trainer.train_on_batch(&x, &y).expect("train_on_batch"),
        Some(w) => {
            // kiln's `train_on_batch` takes no weights: a one-batch, one-epoch `fit` is the
            // same step.
            let options = FitOptions {
                batch_size: x.len(),
                shuffle: false,
                sample_weight: Some(&w),
                verbose: false,
                ..FitOptions::default()
            };
            let history = trainer.fit(&x, &y, &options).expect("fit");
            let mut logs = kiln::Logs {
                loss: history.get("loss").expect("loss")[0],
                metrics: Vec::new(),
            };
            for (key, values) in &history.history {
                if key != "loss" {
                    let key: &'static str = Box::leak(key.clone().into_boxed_str());
                    logs.metrics.push((key, values[0]));
                }
            }
            logs
        }
    };
    assert_logs(&what, &logs, &case["train"]["logs"]);
    assert_weights(&what, trainer.model(), &case["train"]["after"]);
}

/// Keras's `fit(batch_size=3, epochs=2, shuffle=False, validation_data=...)`, on `threads`
/// threads, then `evaluate` of the trained model.
fn fit<M: Trainable + Send + Sync, O: Optimizer>(case: &Value, optimizer: O, threads: usize) {
    let what = format!("{}: fit on {threads} thread(s)", name(case));
    let mut trainer = trainer::<M, O>(case, optimizer);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let (xv, yv) = (floats(&case["x_val"]), floats(&case["y_val"]));
    let w = sample_weight(case);
    let spec = &case["fit"];
    let options = FitOptions {
        epochs: spec["epochs"].as_u64().expect("epochs") as usize,
        batch_size: spec["batch_size"].as_u64().expect("batch_size") as usize,
        shuffle: false,
        validation_data: Some((&xv, &yv)),
        sample_weight: w.as_deref(),
        verbose: false,
        threads,
        ..FitOptions::default()
    };
    let history = trainer.fit(&x, &y, &options).expect("fit");
    for (key, values) in spec["history"].as_object().expect("history") {
        let actual = history
            .get(&kiln_key(key))
            .unwrap_or_else(|| panic!("{what}: no history of {key}"));
        assert_close(
            &format!("{what}: history {key}"),
            actual,
            &floats(values),
            RTOL,
            ATOL,
        );
    }
    assert_weights(&what, trainer.model(), &spec["after"]);

    let logs = trainer
        .evaluate(&floats(&case["x_eval"]), &floats(&case["y_eval"]))
        .expect("evaluate");
    assert_logs(&format!("{what}, then evaluate"), &logs, &case["evaluate"]);
}

/// A step on a batch whose every position is masked: loss 0, no gradient (Keras's
/// `divide_no_nan(total, valid)`), the metrics over every position.
fn all_masked<M: Trainable + Send + Sync, O: Optimizer>(case: &Value, optimizer: O) {
    let what = format!("{}: fully masked batch", name(case));
    let spec = &case["all_masked"];
    let mut trainer = trainer::<M, O>(case, optimizer);
    let logs = trainer
        .train_on_batch(&floats(&spec["x"]), &floats(&spec["y"]))
        .expect("train_on_batch");
    assert_eq!(logs.loss, 0.0, "{what}: loss");
    assert_logs(&what, &logs, &spec["logs"]);
    assert_weights(&what, trainer.model(), &spec["after"]);
}

fn sgd() -> Sgd {
    Sgd {
        learning_rate: 0.1,
        ..Sgd::default()
    }
}

fn adam() -> Adam {
    Adam {
        learning_rate: 0.01,
        ..Adam::default()
    }
}

/// Runs `check` on every case with its model and optimizer.
fn each_case(check: impl Fn(&Value)) {
    let cases = cases();
    assert_eq!(cases.len(), 4, "golden cases");
    for case in &cases {
        check(case);
    }
}

#[test]
fn train_on_batch_weights_the_loss_by_the_output_mask() {
    each_case(|case| match case["model"].as_str() {
        Some("lstm") => train_on_batch::<MaskedLstm, _>(case, sgd()),
        Some("gru") => train_on_batch::<MaskedGru, _>(case, adam()),
        other => panic!("unknown model {other:?}"),
    });
}

#[test]
fn fit_validation_and_evaluate_as_keras() {
    each_case(|case| match case["model"].as_str() {
        Some("lstm") => fit::<MaskedLstm, _>(case, sgd(), 1),
        Some("gru") => fit::<MaskedGru, _>(case, adam(), 1),
        other => panic!("unknown model {other:?}"),
    });
}

/// Shares of a batch count the unmasked positions of the whole batch (a share of 3 may
/// hold only the fully masked sample).
#[test]
fn threaded_fit_normalises_by_the_whole_batch() {
    for threads in [2, 3] {
        each_case(|case| match case["model"].as_str() {
            Some("lstm") => fit::<MaskedLstm, _>(case, sgd(), threads),
            Some("gru") => fit::<MaskedGru, _>(case, adam(), threads),
            other => panic!("unknown model {other:?}"),
        });
    }
}

#[test]
fn a_fully_masked_batch_has_loss_zero_and_no_gradient() {
    each_case(|case| match case["model"].as_str() {
        Some("lstm") => all_masked::<MaskedLstm, _>(case, sgd()),
        Some("gru") => all_masked::<MaskedGru, _>(case, adam()),
        other => panic!("unknown model {other:?}"),
    });
}
