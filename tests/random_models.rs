//! Random Sequential models against Keras 3 (golden data and the models themselves:
//! tools/oracle/random_models.py, which writes tests/golden/random_models.json and
//! tests/random_models/models.rs). For every model, Keras's weights load under kiln's names
//! and shapes, and `predict`, `predict_slice`, `predict_batch` and `predict_into` give
//! Keras's outputs; for every model that trains, one `train_on_batch` (SGD or Adam, mean
//! squared or absolute error) gives Keras's loss (regularization included) and weights.
//!
//! Each test runs every model and reports all the failing ones together. Models whose
//! output carries a Keras mask train in a test of their own (see there).

mod common;
use common::{assert_close, check_model_case, floats, golden};
use kiln::optimizers::Optimizer;
use kiln::{Adam, Loss, Model, Sgd, Trainable};
use serde_json::Value;

/// A check of one model type against its golden case.
type Check = fn(&Value);

include!("random_models/models.rs");

/// Outputs: float32 chains of up to seven layers, summed in another order than XLA's
/// (convolutions, normalizations over up to 192 values), differ by a few ulps per layer.
const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-5;

fn predicts<M: Model>(case: &Value) {
    check_model_case::<M>(case, RTOL, ATOL);
}

fn number(v: &Value) -> f32 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, found {v}")) as f32
}

/// One `train_on_batch` with the case's optimizer and loss, from Keras's start weights:
/// the loss and every weight after the step (moving statistics included) as Keras's.
fn trains<M: Trainable>(case: &Value) {
    let name = case["name"].as_str().unwrap_or("case");
    let train = &case["train"];
    let mut model = M::new(0);
    for (weight, spec) in case["weights"].as_object().expect("weights") {
        model
            .set_weight(weight, &floats(&spec["values"]))
            .unwrap_or_else(|e| panic!("{name}: set_weight({weight}): {e}"));
    }
    let loss_name = train["loss"].as_str().expect("loss");
    let loss = Loss::from_name(loss_name).unwrap_or_else(|| panic!("unknown loss {loss_name}"));
    let learning_rate = number(&train["learning_rate"]);
    let (x, t) = (floats(&case["x"]), floats(&train["t"]));
    let (value, after) = match train["optimizer"].as_str() {
        Some("sgd") => step(
            model,
            Sgd {
                learning_rate,
                ..Sgd::default()
            },
            loss,
            &x,
            &t,
        ),
        Some("adam") => step(
            model,
            Adam {
                learning_rate,
                epsilon: number(&train["epsilon"]),
                ..Adam::default()
            },
            loss,
            &x,
            &t,
        ),
        other => panic!("{name}: unknown optimizer {other:?}"),
    };
    assert_close(
        &format!("{name}: train_on_batch loss ({loss_name})"),
        &[value],
        &[number(&train["loss_value"])],
        RTOL,
        ATOL,
    );
    for weight in M::WEIGHT_NAMES {
        assert_close(
            &format!("{name}: {weight} after one step"),
            &after.get_weight(weight).expect("get_weight"),
            &floats(&train["after"][*weight]),
            RTOL,
            ATOL,
        );
    }
}

fn step<M: Trainable, O: Optimizer>(
    model: M,
    optimizer: O,
    loss: Loss,
    x: &[f32],
    t: &[f32],
) -> (f32, M) {
    let mut trainer = model.compile(optimizer, loss);
    let logs = trainer.train_on_batch(x, t).expect("train_on_batch");
    (logs.loss, trainer.into_model())
}

/// Runs `check` on every listed model's case, then fails naming each model that failed.
fn run_all(checks: &[(&str, Check)]) {
    let file = golden("random_models");
    let cases = file["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for (name, check) in checks {
        let case = cases
            .iter()
            .find(|c| c["name"] == *name)
            .unwrap_or_else(|| panic!("golden case {name} missing (regenerate with tools/keras_oracle.py random_models)"));
        if let Err(e) = std::panic::catch_unwind(|| check(case)) {
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let layers = case["layers"].as_array().map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            failures.push(format!(
                "{name} ({}): {message}",
                layers.unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} models disagree with Keras:\n{}",
        failures.len(),
        checks.len(),
        failures.join("\n")
    );
}

#[test]
fn random_models_predict_as_keras() {
    let file = golden("random_models");
    assert_eq!(PREDICT.len() as u64, file["count"].as_u64().expect("count"));
    assert!(PREDICT.len() >= 60);
    run_all(PREDICT);
}

#[test]
fn random_models_train_one_step_as_keras() {
    let file = golden("random_models");
    let trained = file["trained"].as_u64().expect("trained");
    assert_eq!((TRAIN.len() + TRAIN_OUTPUT_MASK.len()) as u64, trained);
    run_all(TRAIN);
}

/// Models whose output carries a Keras mask (`Masking` or `Embedding(mask_zero = True)`
/// reaching the output through layers that pass it on): Keras averages the training loss
/// over the unmasked positions only (`keras/src/losses/loss.py`, `apply_mask`: weights
/// `total / valid` on them, 0 on the others), and so does kiln's trainer.
#[test]
fn random_models_with_an_output_mask_train_one_step_as_keras() {
    run_all(TRAIN_OUTPUT_MASK);
}
