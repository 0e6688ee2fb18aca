//! kiln's training against Keras 3 on JAX, number by number (golden data:
//! tools/oracle/training.py): for small `Sequential` models with Keras's start weights,
//!
//! - each loss's value and the gradient of every weight from the generated backward pass,
//!   through the chained loss gradient (the one `jax.grad` takes) and the fused one the
//!   trainer uses, plus one `train_on_batch` SGD step per loss (PReLU and ELU models too);
//! - weight regularizers, an activity regularizer and every constraint kind: the loss with
//!   regularization, its gradient, and the weights after a step (constraints after the
//!   update, as Keras);
//! - the loss `train_on_batch` returns and the weights after each of up to three steps of
//!   every optimizer, and the step itself (`after - before`), whose small size (1e-3 for
//!   Adam's default rate) the weights' own tolerance would hide.

mod common;
use common::{assert_close, floats, golden};
use kiln::optimizers::Optimizer;
use kiln::{Adagrad, Adam, AdamW, Gradients, Loss, Model, Pass, RmsProp, Sgd, Trainable};
use serde_json::Value;

kiln::model! {
    SoftmaxNet = Sequential([
        Input(shape = (6,)),
        Dense(4, activation = "tanh"),
        Dense(3, activation = "softmax"),
    ]);
    SigmoidNet = Sequential([
        Input(shape = (6,)),
        Dense(4, activation = "tanh"),
        Dense(1, activation = "sigmoid"),
    ]);
    Logits3 = Sequential([Input(shape = (6,)), Dense(4, activation = "tanh"), Dense(3)]);
    Logits1 = Sequential([Input(shape = (6,)), Dense(4, activation = "tanh"), Dense(1)]);
    PReluNet = Sequential([
        Input(shape = (6,)),
        Dense(4),
        PReLU(),
        Dense(3, activation = "softmax"),
    ]);
    EluNet = Sequential([Input(shape = (6,)), Dense(4), ELU(alpha = 0.7), Dense(3)]);
    L2MaxNorm = Sequential([
        Input(shape = (6,)),
        Dense(4, activation = "tanh", kernel_regularizer = l2(0.01)),
        Dense(3, activation = "softmax", kernel_regularizer = l2(0.01), kernel_constraint = max_norm(2.0)),
    ]);
    EveryRegularizer = Sequential([
        Input(shape = (6,)),
        Dense(
            4,
            activation = "tanh",
            kernel_regularizer = l1_l2(l1 = 0.01, l2 = 0.02),
            bias_regularizer = l2(0.05),
            activity_regularizer = l1(0.03),
            kernel_constraint = unit_norm(),
            bias_constraint = non_neg(),
        ),
        Dense(
            3,
            activation = "softmax",
            kernel_regularizer = l1(0.02),
            kernel_constraint = min_max_norm(min_value = 0.5, max_value = 1.0, rate = 0.5),
        ),
    ]);
}

/// Losses and gradients: float32 sums over 5 samples and 4-6 terms, in another order than
/// XLA's, differ by a few ulps; 1e-5 relative is ~80 ulps. The absolute floor is for
/// entries that cancel to near 0 (a gradient of 1e-8 carries the rounding of its 1e-1
/// terms).
const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-7;

fn file() -> Value {
    golden("training")
}

fn find<'a>(cases: &'a Value, name: &str) -> &'a Value {
    cases
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| {
            panic!("golden case {name} missing (regenerate with tools/keras_oracle.py training)")
        })
}

fn number(v: &Value) -> f32 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, found {v}")) as f32
}

/// `M` with the case's start weights, after checking kiln names and shapes its weights as
/// Keras does.
fn load<M: Model>(case: &Value) -> M {
    let name = case["name"].as_str().unwrap_or("case");
    let keras_names: Vec<&str> = case["weight_names"]
        .as_array()
        .expect("weight_names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        M::WEIGHT_NAMES,
        keras_names.as_slice(),
        "{name}: weight names"
    );
    let mut model = M::new(0);
    for (index, weight) in M::WEIGHT_NAMES.iter().enumerate() {
        let spec = &case["weights"][*weight];
        assert_eq!(
            M::WEIGHT_SHAPES[index],
            common::dims(&spec["shape"]).as_slice(),
            "{name}: shape of {weight}"
        );
        model
            .set_weight(weight, &floats(&spec["values"]))
            .unwrap_or_else(|e| panic!("{name}: set_weight({weight}): {e}"));
    }
    model
}

fn classes<M: Model>() -> usize {
    *M::OUTPUT_SHAPE.last().expect("rank >= 1")
}

/// The data loss and every weight's gradient from `__train_batch`, with the loss gradient
/// chained (`fused = false`) or fused with the output activation where the loss allows.
/// Returns `(loss, activity loss, gradients, whether the fused path was taken)`.
fn loss_and_gradients<M: Trainable>(
    model: &M,
    loss: Loss,
    x: &[f32],
    y: &[f32],
    fused: bool,
) -> (f32, f32, Gradients, bool) {
    let classes = classes::<M>();
    let mut value = f32::NAN;
    let mut took_fused = false;
    let mut grads = Gradients::for_model::<M>();
    let mut head = |pred: &[f32], dy: &mut [f32]| {
        value = loss.value(pred, y, classes);
        took_fused = fused && loss.fused_gradient(pred, y, classes, dy);
        if !took_fused {
            loss.gradient(pred, y, classes, dy);
        }
        took_fused
    };
    let mut pass = Pass::default();
    model.__train_batch(x, &mut pass, &mut head, &mut grads);
    (value, pass.activity_loss, grads, took_fused)
}

fn check_weights<M: Model>(what: &str, model: &M, expected: &Value, rtol: f32, atol: f32) {
    for weight in M::WEIGHT_NAMES {
        let actual = model.get_weight(weight).expect("get_weight");
        assert_close(
            &format!("{what}: {weight}"),
            &actual,
            &floats(&expected[*weight]),
            rtol,
            atol,
        );
    }
}

/// A gradient case: forward outputs, loss and gradients both ways, then one trainer step.
fn check_gradient_case<M: Trainable>(name: &str, loss: Loss, fusable: bool) {
    let file = file();
    let case = find(&file["gradients"], name);
    let model = load::<M>(case);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let pred = model.predict_batch(&x).expect("predict_batch");
    assert_close(
        &format!("{name}: outputs"),
        &pred,
        &floats(&case["y_pred"]),
        RTOL,
        ATOL,
    );
    let keras_loss = number(&case["loss"]);
    for fused in [false, true] {
        let (value, activity, grads, took_fused) = loss_and_gradients(&model, loss, &x, &y, fused);
        assert_eq!(took_fused, fused && fusable, "{name}: fused path");
        assert_eq!(activity, 0.0, "{name}: activity loss");
        assert_close(
            &format!("{name}: loss"),
            &[value],
            &[keras_loss],
            RTOL,
            ATOL,
        );
        for (index, weight) in M::WEIGHT_NAMES.iter().enumerate() {
            assert_close(
                &format!("{name} (fused {took_fused}): d loss / d {weight}"),
                grads.get(index),
                &floats(&case["gradients"][*weight]),
                RTOL,
                ATOL,
            );
        }
    }
    let lr = number(&case["sgd_learning_rate"]);
    let mut trainer = model.compile(
        Sgd {
            learning_rate: lr,
            ..Sgd::default()
        },
        loss,
    );
    let logs = trainer.train_on_batch(&x, &y).expect("train_on_batch");
    assert_close(
        &format!("{name}: train_on_batch loss"),
        &[logs.loss],
        &[number(&case["sgd_loss"])],
        RTOL,
        ATOL,
    );
    check_weights(
        &format!("{name}: after one SGD step"),
        trainer.model(),
        &case["sgd_after"],
        RTOL,
        ATOL,
    );
}

#[test]
fn softmax_losses_match_keras() {
    let cce = Loss::CategoricalCrossentropy { from_logits: false };
    let sparse = Loss::SparseCategoricalCrossentropy { from_logits: false };
    check_gradient_case::<SoftmaxNet>("softmax_cce", cce, true);
    check_gradient_case::<SoftmaxNet>("softmax_sparse", sparse, true);
    check_gradient_case::<SoftmaxNet>("softmax_mse", Loss::MeanSquaredError, false);
    check_gradient_case::<SoftmaxNet>("softmax_mae", Loss::MeanAbsoluteError, false);
}

#[test]
fn sigmoid_binary_crossentropy_matches_keras() {
    let bce = Loss::BinaryCrossentropy { from_logits: false };
    check_gradient_case::<SigmoidNet>("sigmoid1_bce", bce, true);
}

#[test]
fn from_logits_losses_match_keras() {
    let cce = Loss::CategoricalCrossentropy { from_logits: true };
    let sparse = Loss::SparseCategoricalCrossentropy { from_logits: true };
    let bce = Loss::BinaryCrossentropy { from_logits: true };
    check_gradient_case::<Logits3>("logits_cce", cce, false);
    check_gradient_case::<Logits3>("logits_sparse", sparse, false);
    check_gradient_case::<Logits1>("logits1_bce", bce, false);
}

#[test]
fn prelu_and_elu_backward_match_keras() {
    let cce = Loss::CategoricalCrossentropy { from_logits: false };
    check_gradient_case::<PReluNet>("prelu_cce", cce, true);
    check_gradient_case::<EluNet>("elu_mse", Loss::MeanSquaredError, false);
}

/// A regularized case: data loss, loss with regularization (weight terms over the weights,
/// activity terms from the pass), the gradient of that total, then one SGD step with the
/// constraints applied after it.
fn check_regularized_case<M: Trainable>(name: &str) {
    let file = file();
    let case = find(&file["regularized"], name);
    let model = load::<M>(case);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let (value, activity, mut grads, _) = loss_and_gradients(&model, loss, &x, &y, true);
    assert_close(
        &format!("{name}: data loss"),
        &[value],
        &[number(&case["data_loss"])],
        RTOL,
        ATOL,
    );
    let mut total = value + activity;
    for (index, regularizer) in M::REGULARIZERS.iter().enumerate() {
        if let Some(regularizer) = regularizer {
            let w = model
                .get_weight(M::WEIGHT_NAMES[index])
                .expect("get_weight");
            total += regularizer.loss(&w);
            regularizer.add_gradient(&w, grads.slot(index));
        }
    }
    assert_close(
        &format!("{name}: loss with regularization"),
        &[total],
        &[number(&case["loss"])],
        RTOL,
        ATOL,
    );
    for (index, weight) in M::WEIGHT_NAMES.iter().enumerate() {
        assert_close(
            &format!("{name}: d (loss + regularization) / d {weight}"),
            grads.get(index),
            &floats(&case["gradients"][*weight]),
            RTOL,
            ATOL,
        );
    }
    let mut trainer = model.compile(
        Sgd {
            learning_rate: number(&case["sgd_learning_rate"]),
            ..Sgd::default()
        },
        loss,
    );
    let logs = trainer.train_on_batch(&x, &y).expect("train_on_batch");
    assert_close(
        &format!("{name}: train_on_batch loss"),
        &[logs.loss],
        &[number(&case["sgd_loss"])],
        RTOL,
        ATOL,
    );
    check_weights(
        &format!("{name}: after one constrained SGD step"),
        trainer.model(),
        &case["after"],
        RTOL,
        ATOL,
    );
}

#[test]
fn l2_and_max_norm_match_keras() {
    assert!(L2MaxNorm::REGULARIZERS.iter().flatten().count() == 2);
    assert!(L2MaxNorm::CONSTRAINTS.iter().flatten().count() == 1);
    check_regularized_case::<L2MaxNorm>("l2_max_norm");
}

#[test]
fn every_regularizer_and_constraint_kind_matches_keras() {
    assert!(EveryRegularizer::REGULARIZERS.iter().flatten().count() == 3);
    assert!(EveryRegularizer::CONSTRAINTS.iter().flatten().count() == 3);
    check_regularized_case::<EveryRegularizer>("l1l2_activity_unit_norm_min_max");
}

/// Tolerances of the step `after - before`. Both sides are differences of f32 weights below
/// 1 in magnitude, so each carries up to an ulp of the weight of rounding: that is the
/// floor. Above it: Adam, RMSprop and Adagrad divide each gradient entry by its own running
/// RMS, so a step keeps its gradient's relative error undamped, and small gradient entries
/// (1e-4) agree with Keras only to ~1e-4 relative (their absolute error, a few 1e-8, is the
/// rounding of the 1e-1 terms they sum); the worst measured step is 1.5e-4 relative
/// (centered RMSprop, step 3). 3e-4 is still 10x tighter on a 1e-3 step than the weights'
/// own tolerance.
const STEP_RTOL: f32 = 3e-4;
const STEP_ATOL: f32 = 2e-7;

/// `steps` `train_on_batch` calls with `optimizer`, compared after every call with Keras's
/// returned loss, weights, and step from the start weights.
fn check_steps<O: Optimizer>(name: &str, optimizer: O) {
    let file = file();
    let case = find(&file["steps"], name);
    let config = &case["config"];
    let keras_lr = number(&config["learning_rate"]);
    assert_eq!(
        optimizer.learning_rate(),
        keras_lr,
        "{name}: learning rate differs from the Keras optimizer's {config}"
    );
    let model = load::<SoftmaxNet>(case);
    let start: Vec<Vec<f32>> = SoftmaxNet::WEIGHT_NAMES
        .iter()
        .map(|w| model.get_weight(w).expect("get_weight"))
        .collect();
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let mut trainer = model.compile(
        optimizer,
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    let losses = floats(&case["losses"]);
    let after = case["after"].as_array().expect("after");
    assert_eq!(losses.len(), after.len());
    for (step, (keras_loss, keras_after)) in losses.iter().zip(after).enumerate() {
        let what = format!("{name}: step {}", step + 1);
        let logs = trainer.train_on_batch(&x, &y).expect("train_on_batch");
        assert_close(
            &format!("{what}: train_on_batch loss"),
            &[logs.loss],
            &[*keras_loss],
            RTOL,
            ATOL,
        );
        check_weights(&what, trainer.model(), keras_after, RTOL, ATOL);
        for (index, weight) in SoftmaxNet::WEIGHT_NAMES.iter().enumerate() {
            let kiln_step: Vec<f32> = trainer
                .model()
                .get_weight(weight)
                .expect("get_weight")
                .iter()
                .zip(&start[index])
                .map(|(a, b)| a - b)
                .collect();
            let keras_step: Vec<f32> = floats(&keras_after[*weight])
                .iter()
                .zip(&start[index])
                .map(|(a, b)| a - b)
                .collect();
            assert_close(
                &format!("{what}: {weight} - start"),
                &kiln_step,
                &keras_step,
                STEP_RTOL,
                STEP_ATOL,
            );
        }
    }
    assert_eq!(trainer.optimizer().iterations(), losses.len() as u64);
}

#[test]
fn sgd_steps_match_keras() {
    check_steps(
        "sgd",
        Sgd {
            learning_rate: 0.1,
            ..Sgd::default()
        },
    );
    check_steps(
        "sgd_momentum",
        Sgd {
            learning_rate: 0.1,
            momentum: 0.9,
            ..Sgd::default()
        },
    );
    check_steps(
        "sgd_nesterov",
        Sgd {
            learning_rate: 0.1,
            momentum: 0.9,
            nesterov: true,
            ..Sgd::default()
        },
    );
}

#[test]
fn adam_and_adamw_steps_match_keras() {
    check_steps("adam_default", Adam::default());
    check_steps(
        "adam_lr_0.01",
        Adam {
            learning_rate: 0.01,
            ..Adam::default()
        },
    );
    check_steps(
        "adam_amsgrad",
        Adam {
            learning_rate: 0.01,
            amsgrad: true,
            ..Adam::default()
        },
    );
    check_steps("adamw_default", AdamW::default());
    check_steps(
        "adamw_lr_0.01",
        AdamW {
            weight_decay: 0.1,
            adam: Adam {
                learning_rate: 0.01,
                ..Adam::default()
            },
        },
    );
}

#[test]
fn rmsprop_and_adagrad_steps_match_keras() {
    check_steps("rmsprop_default", RmsProp::default());
    check_steps(
        "rmsprop_momentum_centered",
        RmsProp {
            learning_rate: 0.01,
            momentum: 0.5,
            centered: true,
            ..RmsProp::default()
        },
    );
    check_steps("adagrad_default", Adagrad::default());
    check_steps(
        "adagrad_lr_0.1",
        Adagrad {
            learning_rate: 0.1,
            ..Adagrad::default()
        },
    );
}
