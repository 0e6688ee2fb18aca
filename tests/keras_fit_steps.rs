//! Training through the whole stack against Keras 3 (golden data:
//! tools/oracle/fit_steps.py): each loss's value and every weight's gradient from the
//! generated backward pass, and the weights after real `train_on_batch` steps of every
//! optimizer — the regularized, constrained model included.

mod common;
use common::{assert_close, floats, golden};
use kiln::optimizers::Optimizer;
use kiln::{Adagrad, Adam, AdamW, Gradients, Loss, Model, Pass, RmsProp, Sgd, Trainable};
use serde_json::Value;

kiln::model! {
    SoftmaxNet = Sequential([Input(shape = (6,)), Dense(4, activation = "tanh"), Dense(3, activation = "softmax")]);
    TanhNet = Sequential([Input(shape = (6,)), Dense(4, activation = "tanh"), Dense(3, activation = "tanh")]);
    SigmoidNet = Sequential([Input(shape = (6,)), Dense(4, activation = "tanh"), Dense(2, activation = "sigmoid")]);
    Logits3 = Sequential([Input(shape = (6,)), Dense(4, activation = "tanh"), Dense(3)]);
    Logits2 = Sequential([Input(shape = (6,)), Dense(4, activation = "tanh"), Dense(2)]);
    Regularized = Sequential([
        Input(shape = (6,)),
        Dense(4, activation = "tanh", kernel_regularizer = l2(0.01), kernel_constraint = max_norm(0.9)),
        Dense(3, activation = "softmax", bias_regularizer = l1(0.02)),
    ]);
}

const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-6;

fn find<'a>(cases: &'a Value, name: &str) -> &'a Value {
    cases
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("golden case {name} missing"))
}

fn load<M: Model>(case: &Value) -> M {
    let mut model = M::new(0);
    for (name, spec) in case["weights"].as_object().expect("weights") {
        model
            .set_weight(name, &floats(&spec["values"]))
            .expect("set_weight");
    }
    model
}

/// The loss and gradients kiln computes for `case` with `loss`, through the chained
/// (unfused) loss gradient — the one `jax.grad` of Keras's loss takes — and, where the loss
/// pairs with the output activation, through the fused one the trainer uses.
fn check_gradients<M: Trainable>(name: &str, loss: Loss) {
    let file = golden("fit_steps");
    let case = find(&file["gradients"], name);
    let model = load::<M>(case);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let classes = *M::OUTPUT_SHAPE.last().expect("rank >= 1");
    for fused in [false, true] {
        let mut value = f32::NAN;
        let mut grads = Gradients::for_model::<M>();
        let mut head = |pred: &[f32], dy: &mut [f32]| {
            value = loss.value(pred, &y, classes);
            if fused && loss.fused_gradient(pred, &y, classes, dy) {
                return true;
            }
            loss.gradient(pred, &y, classes, dy);
            false
        };
        model.__train_batch(&x, &mut Pass::default(), &mut head, &mut grads);
        let expected = case["loss"].as_f64().expect("loss") as f32;
        assert_close(&format!("{name}: loss"), &[value], &[expected], RTOL, ATOL);
        for (index, weight) in M::WEIGHT_NAMES.iter().enumerate() {
            let keras = floats(&case["gradients"][*weight]);
            assert_close(
                &format!("{name} (fused {fused}): d loss / d {weight}"),
                grads.get(index),
                &keras,
                RTOL,
                ATOL,
            );
        }
    }
}

#[test]
fn every_loss_gives_keras_loss_and_gradients() {
    check_gradients::<SoftmaxNet>(
        "softmax_cce",
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    check_gradients::<SoftmaxNet>(
        "softmax_sparse",
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    );
    check_gradients::<SoftmaxNet>("softmax_mse", Loss::MeanSquaredError);
    check_gradients::<TanhNet>("tanh_mae", Loss::MeanAbsoluteError);
    check_gradients::<SigmoidNet>(
        "sigmoid_bce",
        Loss::BinaryCrossentropy { from_logits: false },
    );
    check_gradients::<Logits3>(
        "logits_cce",
        Loss::CategoricalCrossentropy { from_logits: true },
    );
    check_gradients::<Logits3>(
        "logits_sparse",
        Loss::SparseCategoricalCrossentropy { from_logits: true },
    );
    check_gradients::<Logits2>("logits_bce", Loss::BinaryCrossentropy { from_logits: true });
}

/// `steps` calls of `train_on_batch`, compared with Keras's losses and final weights.
fn check_steps<M: Trainable, O: Optimizer>(name: &str, optimizer: O) {
    let file = golden("fit_steps");
    let case = find(&file["steps"], name);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let mut trainer = load::<M>(case).compile(
        optimizer,
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    let steps = case["steps"].as_u64().expect("steps") as usize;
    let keras_losses = floats(&case["losses"]);
    for (step, keras_loss) in keras_losses.iter().enumerate().take(steps) {
        let logs = trainer.train_on_batch(&x, &y).expect("train_on_batch");
        assert_close(
            &format!("{name}: loss of step {}", step + 1),
            &[logs.loss],
            &[*keras_loss],
            RTOL,
            ATOL,
        );
    }
    for weight in M::WEIGHT_NAMES {
        let after = trainer.model().get_weight(weight).expect("get_weight");
        assert_close(
            &format!("{name}: {weight} after {steps} steps"),
            &after,
            &floats(&case["after"][*weight]),
            1e-5,
            2e-6,
        );
    }
}

#[test]
fn optimizer_steps_match_keras_train_on_batch() {
    check_steps::<SoftmaxNet, _>(
        "sgd_1",
        Sgd {
            learning_rate: 0.1,
            ..Sgd::default()
        },
    );
    check_steps::<SoftmaxNet, _>(
        "sgd_momentum_2",
        Sgd {
            learning_rate: 0.1,
            momentum: 0.9,
            ..Sgd::default()
        },
    );
    check_steps::<SoftmaxNet, _>(
        "sgd_nesterov_2",
        Sgd {
            learning_rate: 0.1,
            momentum: 0.9,
            nesterov: true,
            ..Sgd::default()
        },
    );
    check_steps::<SoftmaxNet, _>("adam_2", Adam::default());
    check_steps::<SoftmaxNet, _>(
        "adam_lr_2",
        Adam {
            learning_rate: 0.01,
            ..Adam::default()
        },
    );
    let mut adamw = AdamW::default();
    adamw.adam.learning_rate = 0.01;
    check_steps::<SoftmaxNet, _>("adamw_2", adamw);
    check_steps::<SoftmaxNet, _>("rmsprop_1", RmsProp::default());
    check_steps::<SoftmaxNet, _>(
        "rmsprop_2",
        RmsProp {
            learning_rate: 0.01,
            ..RmsProp::default()
        },
    );
    check_steps::<SoftmaxNet, _>(
        "adagrad_2",
        Adagrad {
            learning_rate: 0.1,
            ..Adagrad::default()
        },
    );
}

#[test]
fn regularizers_join_the_loss_and_constraints_follow_the_update() {
    check_steps::<Regularized, _>(
        "regularized_constrained_sgd_1",
        Sgd {
            learning_rate: 0.5,
            ..Sgd::default()
        },
    );
}
