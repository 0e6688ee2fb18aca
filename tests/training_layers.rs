//! Training through the shape layers (`Flatten`, `Reshape`, `Permute`, `RepeatVector`) and
//! the activation layers (`ReLU`, `LeakyReLU`, `ELU`, `ThresholdedReLU`, `PReLU`,
//! `Softmax`): the generated backward pass against finite differences (with a Dense with
//! weights before and after each layer, on every rank the layer takes), against Keras 3's
//! own gradients and SGD steps (golden data: tools/oracle/training_layers.py, including
//! PReLU's `alpha_regularizer` / `alpha_constraint` and the fused softmax cross-entropy),
//! a proptest over seeds, and `fit` on a model holding every one of these layers.

mod common;
use common::{assert_close, check_gradients, floats, golden, load};
use kiln::{Adam, FitOptions, Loss, Model, Sgd, Trainable};
use proptest::prelude::*;
use serde_json::Value;

kiln::model! {
    // Flatten.
    FlattenRank1 = Sequential([Input(shape = (5,)), Dense(4), Flatten(), Dense(3)]);
    FlattenRank2 = Sequential([Input(shape = (3, 4)), Dense(5), Flatten(), Dense(3)]);
    FlattenRank3 = Sequential([Input(shape = (2, 3, 4)), Dense(3), Flatten(), Dense(2)]);
    // Reshape.
    ReshapeRank1 = Sequential([Input(shape = (6,)), Dense(12), Reshape((3, 4)), Dense(2)]);
    ReshapeRank2 = Sequential([Input(shape = (3, 4)), Dense(6), Reshape((-1,)), Dense(3)]);
    ReshapeRank3 = Sequential([Input(shape = (2, 3, 4)), Dense(2), Reshape((4, 3)), Dense(2)]);
    // Permute (rank 1 has only the identity).
    PermuteRank1 = Sequential([Input(shape = (5,)), Dense(4), Permute((1,)), Dense(2)]);
    PermuteRank2 = Sequential([Input(shape = (3, 4)), Dense(5), Permute((2, 1)), Dense(2)]);
    PermuteRank3 = Sequential([Input(shape = (2, 3, 4)), Dense(3), Permute((3, 1, 2)), Dense(2)]);
    PermuteRank4 = Sequential([
        Input(shape = (2, 3, 2, 2)),
        Dense(3),
        Permute((4, 2, 3, 1)),
        Dense(2),
    ]);
    // RepeatVector takes rank 1 only.
    RepeatRank1 = Sequential([Input(shape = (4,)), Dense(3), RepeatVector(3), Dense(2)]);
    // ReLU.
    ReluRank1 = Sequential([Input(shape = (5,)), Dense(6), ReLU(), Dense(3)]);
    ReluRank2 = Sequential([
        Input(shape = (3, 4)),
        Dense(5),
        ReLU(max_value = 0.6, negative_slope = 0.2, threshold = 0.1),
        Dense(3),
    ]);
    ReluRank3 = Sequential([Input(shape = (2, 3, 4)), Dense(3), ReLU(negative_slope = 0.3), Dense(2)]);
    // LeakyReLU.
    LeakyRank1 = Sequential([Input(shape = (5,)), Dense(6), LeakyReLU(), Dense(3)]);
    LeakyRank2 = Sequential([Input(shape = (3, 4)), Dense(5), LeakyReLU(negative_slope = 0.1), Dense(3)]);
    LeakyRank3 = Sequential([Input(shape = (2, 3, 4)), Dense(3), LeakyReLU(alpha = 0.5), Dense(2)]);
    // ELU.
    EluRank1 = Sequential([Input(shape = (5,)), Dense(6), ELU(), Dense(3)]);
    EluRank2 = Sequential([Input(shape = (3, 4)), Dense(5), ELU(alpha = 0.5), Dense(3)]);
    EluRank3 = Sequential([Input(shape = (2, 3, 4)), Dense(3), ELU(alpha = 2.0), Dense(2)]);
    // ThresholdedReLU.
    ThresholdedRank1 = Sequential([Input(shape = (5,)), Dense(6), ThresholdedReLU(theta = 0.1), Dense(3)]);
    ThresholdedRank2 = Sequential([Input(shape = (3, 4)), Dense(5), ThresholdedReLU(theta = 0.2), Dense(3)]);
    ThresholdedRank3 = Sequential([Input(shape = (2, 3, 4)), Dense(3), ThresholdedReLU(theta = 0.0), Dense(2)]);
    // PReLU, alpha drawn so that every slope matters.
    PreluRank1 = Sequential([
        Input(shape = (5,)),
        Dense(6),
        PReLU(alpha_initializer = RandomUniform(minval = 0.1, maxval = 0.6)),
        Dense(3),
    ]);
    PreluRank2 = Sequential([
        Input(shape = (3, 4)),
        Dense(5),
        PReLU(alpha_initializer = RandomUniform(minval = 0.1, maxval = 0.6), shared_axes = [1]),
        Dense(3),
    ]);
    PreluRank3None = Sequential([
        Input(shape = (2, 3, 4)),
        Dense(3),
        PReLU(alpha_initializer = RandomUniform(minval = 0.1, maxval = 0.6)),
        Dense(2),
    ]);
    PreluRank3Shared1 = Sequential([
        Input(shape = (2, 3, 4)),
        Dense(3),
        PReLU(alpha_initializer = RandomUniform(minval = 0.1, maxval = 0.6), shared_axes = [1]),
        Dense(2),
    ]);
    PreluRank3Shared12 = Sequential([
        Input(shape = (2, 3, 4)),
        Dense(3),
        PReLU(alpha_initializer = RandomUniform(minval = 0.1, maxval = 0.6), shared_axes = [1, 2]),
        Dense(2),
    ]);
    // Softmax.
    SoftmaxRank1 = Sequential([Input(shape = (5,)), Dense(6), Softmax(), Dense(3)]);
    SoftmaxRank2Axis1 = Sequential([Input(shape = (3, 4)), Dense(5), Softmax(axis = 1), Dense(3)]);
    SoftmaxRank2AxisLast = Sequential([Input(shape = (3, 4)), Dense(5), Softmax(axis = -1), Dense(3)]);
    SoftmaxRank3Axis1 = Sequential([Input(shape = (2, 3, 4)), Dense(3), Softmax(axis = 1), Dense(2)]);
    SoftmaxRank3AxisLast = Sequential([Input(shape = (2, 3, 4)), Dense(3), Softmax(axis = -1), Dense(2)]);
    // Softmax last, not fused (the check's loss is a squared error): its own Jacobian.
    SoftmaxLast = Sequential([Input(shape = (3, 4)), Dense(5), Softmax()]);
    SoftmaxLastAxis1 = Sequential([Input(shape = (3, 4)), Dense(5), Softmax(axis = 1)]);
    // Each layer first, where the model needs no input gradient.
    PreluFirst = Sequential([
        Input(shape = (2, 3)),
        PReLU(alpha_initializer = RandomUniform(minval = 0.1, maxval = 0.6), shared_axes = [2]),
        Dense(2),
    ]);
    ShapeLayersFirst = Sequential([Input(shape = (2, 3)), Permute((2, 1)), Flatten(), Dense(2)]);
    ReshapeFirst = Sequential([Input(shape = (6,)), Reshape((2, 3)), Dense(2)]);
    RepeatFirst = Sequential([Input(shape = (3,)), RepeatVector(2), Dense(2)]);
    ActivationsFirst = Sequential([Input(shape = (4,)), ELU(), Dense(3)]);
    SoftmaxFirst = Sequential([Input(shape = (2, 3)), Softmax(axis = 1), Dense(2)]);
    // A chain of several of these layers, for the proptest (smooth ones only: finite
    // differences are meaningless across a kink).
    Chain = Sequential([
        Input(shape = (2, 3)),
        Dense(4),
        Permute((2, 1)),
        ELU(),
        Reshape((8,)),
        RepeatVector(2),
        Softmax(axis = 1),
        Flatten(),
        Dense(3),
        Reshape((3, 1)),
        Dense(2),
    ]);
}

const TOL: f64 = 2e-3;

#[test]
fn shape_layers_backward_matches_finite_differences() {
    check_gradients::<FlattenRank1>(1, 4, 12, TOL);
    check_gradients::<FlattenRank2>(2, 4, 12, TOL);
    check_gradients::<FlattenRank3>(3, 3, 12, TOL);
    check_gradients::<ReshapeRank1>(4, 4, 12, TOL);
    check_gradients::<ReshapeRank2>(5, 4, 12, TOL);
    check_gradients::<ReshapeRank3>(6, 3, 12, TOL);
    check_gradients::<PermuteRank1>(7, 4, 12, TOL);
    check_gradients::<PermuteRank2>(8, 4, 12, TOL);
    check_gradients::<PermuteRank3>(9, 3, 12, TOL);
    check_gradients::<PermuteRank4>(10, 3, 12, TOL);
    check_gradients::<RepeatRank1>(11, 4, 12, TOL);
}

// ReLU, LeakyReLU, ThresholdedReLU and PReLU have kinks (and ReLU with a threshold and
// ThresholdedReLU jumps): a finite difference whose step (1e-2 on a first-layer weight)
// carries a pre-activation across one is off by the slope's jump, which happens for about a
// third of all seeds. The seeds below keep every pre-activation clear of the kinks. (With a
// step of 1e-4 every seed from 0 to 39 agrees; Keras's own gradients, in `gradients_match_keras`,
// cover these layers without any choice of seed.)

#[test]
fn relu_backward_matches_finite_differences() {
    check_gradients::<ReluRank1>(13, 4, 12, TOL);
    check_gradients::<ReluRank2>(4, 3, 12, TOL);
    check_gradients::<ReluRank3>(14, 3, 12, TOL);
}

#[test]
fn leaky_relu_backward_matches_finite_differences() {
    check_gradients::<LeakyRank1>(16, 4, 12, TOL);
    check_gradients::<LeakyRank2>(18, 3, 12, TOL);
    check_gradients::<LeakyRank3>(17, 3, 12, TOL);
}

#[test]
fn elu_backward_matches_finite_differences() {
    check_gradients::<EluRank1>(18, 4, 12, TOL);
    check_gradients::<EluRank2>(19, 3, 12, TOL);
    check_gradients::<EluRank3>(20, 3, 12, TOL);
}

#[test]
fn thresholded_relu_backward_matches_finite_differences() {
    check_gradients::<ThresholdedRank1>(21, 4, 12, TOL);
    check_gradients::<ThresholdedRank2>(22, 3, 12, TOL);
    check_gradients::<ThresholdedRank3>(13, 3, 12, TOL);
}

#[test]
fn prelu_backward_matches_finite_differences_for_alpha_and_inputs() {
    // `per_weight` 64 checks every alpha entry of these shapes (at most 24 of them).
    check_gradients::<PreluRank1>(24, 4, 64, TOL);
    check_gradients::<PreluRank2>(26, 3, 64, TOL);
    check_gradients::<PreluRank3None>(29, 3, 64, TOL);
    check_gradients::<PreluRank3Shared1>(30, 3, 64, TOL);
    check_gradients::<PreluRank3Shared12>(31, 3, 64, TOL);
}

#[test]
fn softmax_backward_matches_finite_differences_on_axis_1_and_last() {
    check_gradients::<SoftmaxRank1>(29, 4, 12, TOL);
    check_gradients::<SoftmaxRank2Axis1>(30, 3, 12, TOL);
    check_gradients::<SoftmaxRank2AxisLast>(31, 3, 12, TOL);
    check_gradients::<SoftmaxRank3Axis1>(32, 3, 12, TOL);
    check_gradients::<SoftmaxRank3AxisLast>(33, 3, 12, TOL);
    check_gradients::<SoftmaxLast>(34, 3, 12, TOL);
    check_gradients::<SoftmaxLastAxis1>(35, 3, 12, TOL);
}

#[test]
fn layers_that_come_first_still_train_what_follows() {
    check_gradients::<PreluFirst>(36, 4, 64, TOL);
    check_gradients::<ShapeLayersFirst>(37, 4, 12, TOL);
    check_gradients::<ReshapeFirst>(38, 4, 12, TOL);
    check_gradients::<RepeatFirst>(39, 4, 12, TOL);
    check_gradients::<ActivationsFirst>(40, 4, 12, TOL);
    check_gradients::<SoftmaxFirst>(41, 4, 12, TOL);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn chained_layers_backward_matches_finite_differences(seed in 0u64..1_000_000, samples in 1usize..4) {
        check_gradients::<Chain>(seed, samples, 8, TOL);
    }
}

// Keras's own numbers.

kiln::model! {
    PreluZeros = Sequential([Input(shape = (2, 3)), Dense(3), PReLU(), Dense(2)]);
    PreluNone = Sequential([Input(shape = (3, 2, 4)), Dense(3), PReLU(), Dense(2)]);
    PreluShared1 = Sequential([Input(shape = (3, 2, 4)), Dense(3), PReLU(shared_axes = [1]), Dense(2)]);
    PreluShared12 = Sequential([
        Input(shape = (3, 2, 4)),
        Dense(3),
        PReLU(shared_axes = [1, 2]),
        Dense(2),
    ]);
    ShapeChain = Sequential([
        Input(shape = (4,)),
        Dense(6),
        Reshape((2, 3)),
        Permute((2, 1)),
        Softmax(axis = 1),
        Flatten(),
        RepeatVector(2),
        Dense(2),
    ]);
    ActivationChain = Sequential([
        Input(shape = (2, 3)),
        Dense(4),
        LeakyReLU(negative_slope = 0.2),
        ELU(alpha = 0.7),
        ReLU(max_value = 1.5, negative_slope = 0.1, threshold = 0.2),
        Flatten(),
        Dense(2),
    ]);
    PreluL2MaxNorm = Sequential([
        Input(shape = (2, 3)),
        Dense(3),
        PReLU(alpha_regularizer = L2(0.1), alpha_constraint = MaxNorm(0.5, axis = 0)),
        Dense(2),
    ]);
    PreluL1NonNegShared = Sequential([
        Input(shape = (2, 3)),
        Dense(3),
        PReLU(alpha_regularizer = L1(0.05), alpha_constraint = NonNeg(), shared_axes = [1]),
        Dense(2),
    ]);
    SoftmaxCce = Sequential([Input(shape = (5,)), Dense(3), Softmax()]);
    MaskedSoftmaxAxis1 = Sequential([Input(shape = (4, 3)), Masking(), Dense(3), Softmax(axis = 1), Dense(2)]);
    MaskedSoftmaxLast = Sequential([Input(shape = (4, 3)), Masking(), Dense(3), Softmax(), Dense(2)]);
    MaskedSoftmaxOut = Sequential([Input(shape = (4, 3)), Masking(), Dense(3), Softmax()]);
}

fn golden_case(list: &str, name: &str) -> Value {
    golden("training_layers")[list]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| {
            panic!("golden case {name} missing (regenerate with tools/keras_oracle.py)")
        })
}

/// The generated backward pass's gradients of Keras's mean squared error, weight by weight,
/// against `jax.grad` of the same Keras model.
fn check_keras_gradients<M: Trainable>(name: &str) {
    let case = golden_case("grads", name);
    let model = load::<M>(&case);
    let names: Vec<&str> = case["weight_names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(M::WEIGHT_NAMES, names.as_slice(), "{name}: weight names");
    let (x, t) = (floats(&case["x"]), floats(&case["t"]));
    let y = model.predict_batch(&x).expect("predict_batch");
    assert_close(
        &format!("{name}: outputs"),
        &y,
        &floats(&case["y"]),
        1e-5,
        1e-6,
    );
    let mut grads = kiln::Gradients::for_model::<M>();
    // Keras's "mse": the mean over every output value of the batch.
    let n = t.len() as f32;
    let mut head = |y: &[f32], dy: &mut [f32]| {
        for ((d, a), b) in dy.iter_mut().zip(y).zip(&t) {
            *d = 2.0 * (a - b) / n;
        }
        false
    };
    model.__train_batch(&x, &mut kiln::Pass::default(), &mut head, &mut grads);
    for (index, weight) in M::WEIGHT_NAMES.iter().enumerate() {
        let expected = floats(&case["grads"][*weight]);
        assert_close(
            &format!("{name}: gradient of {weight}"),
            grads.get(index),
            &expected,
            1e-4,
            1e-6,
        );
    }
}

#[test]
fn gradients_match_keras() {
    check_keras_gradients::<PreluZeros>("prelu_zeros");
    check_keras_gradients::<PreluNone>("prelu_none");
    check_keras_gradients::<PreluShared1>("prelu_shared_1");
    check_keras_gradients::<PreluShared12>("prelu_shared_1_2");
    check_keras_gradients::<ShapeChain>("shape_chain");
    check_keras_gradients::<ActivationChain>("activation_chain");
}

#[test]
fn masked_softmax_gradients_match_keras() {
    // Masked rows, and a sample with one row kept: masked positions neither receive nor pass
    // on gradient, along axis 1 and along the last axis.
    check_keras_gradients::<MaskedSoftmaxAxis1>("masked_softmax_axis1");
    check_keras_gradients::<MaskedSoftmaxLast>("masked_softmax_last");
}

#[test]
fn fused_masked_softmax_equals_its_chain_rule() {
    // The last Softmax under a mask: the fused cross-entropy gradient (dy already with respect
    // to the logits) must give the weights the same gradients as the loss's own gradient
    // through the softmax's Jacobian, masked rows (all-zero outputs) included.
    let case = golden_case("grads", "masked_softmax_last");
    let x = floats(&case["x"]);
    let labels: Vec<f32> = (0..x.len())
        .map(|i| if i % 3 == i / 3 % 3 { 1.0 } else { 0.0 })
        .collect();
    let model = MaskedSoftmaxOut::new(5);
    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let run = |fused: bool| {
        let mut grads = kiln::Gradients::for_model::<MaskedSoftmaxOut>();
        let mut head = |y: &[f32], dy: &mut [f32]| {
            if fused {
                assert!(loss.fused_gradient(y, &labels, 3, dy));
            } else {
                loss.gradient(y, &labels, 3, dy);
            }
            fused
        };
        model.__train_batch(&x, &mut kiln::Pass::default(), &mut head, &mut grads);
        grads
    };
    let (fused, chained) = (run(true), run(false));
    for (index, weight) in MaskedSoftmaxOut::WEIGHT_NAMES.iter().enumerate() {
        assert!(
            fused.get(index).iter().any(|g| *g != 0.0),
            "{weight}: some gradient"
        );
        assert_close(weight, fused.get(index), chained.get(index), 1e-4, 1e-6);
    }
}

#[test]
fn prelu_input_gradient_is_zero_at_zero_like_jax() {
    // PReLU's input is the model input here (identity Dense), a third of it exactly 0; the
    // Dense kernel's gradient is x^T times PReLU's input gradient, so a nonzero gradient at 0
    // would show in it. Keras agrees on the kernel's gradient only with dx = 0 at x = 0.
    let case = golden_case("grads", "prelu_zeros");
    let x = floats(&case["x"]);
    assert!(
        x.iter().filter(|v| **v == 0.0).count() >= 4,
        "the case feeds PReLU exact zeros"
    );
    check_keras_gradients::<PreluZeros>("prelu_zeros");
}

/// One `train_on_batch` with Keras's SGD against Keras's: the reported loss (with the
/// regularization term) and every weight afterwards (after the constraint).
fn check_keras_step<M: Trainable>(name: &str, loss: Loss) {
    let case = golden_case("steps", name);
    let model = load::<M>(&case);
    let lr = case["lr"].as_f64().expect("lr") as f32;
    let mut trainer = model.compile(
        Sgd {
            learning_rate: lr,
            ..Sgd::default()
        },
        loss,
    );
    let logs = trainer
        .train_on_batch(&floats(&case["x"]), &floats(&case["t"]))
        .expect("train_on_batch");
    let expected = case["loss"].as_f64().expect("loss") as f32;
    assert_close(
        &format!("{name}: loss"),
        &[logs.loss],
        &[expected],
        1e-5,
        1e-6,
    );
    for weight in M::WEIGHT_NAMES {
        let after = trainer.model().get_weight(weight).expect("get_weight");
        assert_close(
            &format!("{name}: {weight} after the step"),
            &after,
            &floats(&case["after"][*weight]),
            1e-4,
            1e-6,
        );
    }
}

#[test]
fn prelu_regularizer_and_constraint_train_like_keras() {
    check_keras_step::<PreluL2MaxNorm>("prelu_l2_max_norm", Loss::MeanSquaredError);
    check_keras_step::<PreluL1NonNegShared>("prelu_l1_non_neg_shared", Loss::MeanSquaredError);
    assert!(PreluL2MaxNorm::REGULARIZERS[2].is_some() && PreluL2MaxNorm::CONSTRAINTS[2].is_some());
}

#[test]
fn last_softmax_fuses_with_cross_entropy_like_keras() {
    assert_eq!(
        SoftmaxCce::OUTPUT_ACTIVATION,
        Some(kiln::Activation::Softmax)
    );
    assert_eq!(
        SoftmaxLastAxis1::OUTPUT_ACTIVATION,
        None,
        "axis 1 is not the class axis"
    );
    check_keras_step::<SoftmaxCce>(
        "softmax_cce",
        Loss::CategoricalCrossentropy { from_logits: false },
    );
}

// Every one of these layers in one model: it is trainable and `fit` lowers its loss.

kiln::model! {
    EveryLayer = Sequential([
        Input(shape = (2, 3)),
        Dense(4),
        ReLU(negative_slope = 0.1),
        LeakyReLU(),
        ELU(),
        ThresholdedReLU(theta = 0.0),
        PReLU(alpha_initializer = Constant(0.25), alpha_regularizer = L2(1e-4), alpha_constraint = NonNeg(), shared_axes = [1]),
        Permute((2, 1)),
        Flatten(),
        RepeatVector(2),
        Reshape((4, 4)),
        Softmax(axis = 1),
        Flatten(),
        Dense(3),
        Softmax(),
    ]);
}

fn assert_trainable<M: Trainable>() {}

#[test]
fn a_model_with_every_layer_fits() {
    assert_trainable::<EveryLayer>();
    // Three classes by the sign pattern of two input features.
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..24 {
        let a = ((i * 7 % 11) as f32 - 5.0) / 5.0;
        let b = ((i * 5 % 13) as f32 - 6.0) / 6.0;
        x.extend_from_slice(&[a, b, a - b, b, a * b, 0.5]);
        let class = if a > 0.0 {
            0
        } else if b > 0.0 {
            1
        } else {
            2
        };
        let mut onehot = [0.0; 3];
        onehot[class] = 1.0;
        y.extend_from_slice(&onehot);
    }
    let mut trainer = EveryLayer::new(3).compile(
        Adam {
            learning_rate: 0.02,
            ..Adam::default()
        },
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    let options = FitOptions {
        epochs: 40,
        batch_size: 8,
        verbose: false,
        seed: 1,
        ..Default::default()
    };
    let history = trainer.fit(&x, &y, &options).expect("fit");
    let losses = history.get("loss").expect("loss history");
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[39] < 0.8 * losses[0],
        "loss {} -> {}",
        losses[0],
        losses[39]
    );
    let alpha = trainer.model().get_weight("p_re_lu/alpha").expect("alpha");
    assert!(
        alpha.iter().all(|a| *a >= 0.0),
        "non_neg holds after every step: {alpha:?}"
    );
    assert_ne!(alpha, vec![0.25; alpha.len()], "alpha learned");
}
