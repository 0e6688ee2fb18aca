//! Masking, Dropout, ActivityRegularization and Lambda against Keras 3
//! (tests/golden/misc_layers.json, from tools/oracle/misc_layers.py): outputs, masks, the
//! activity loss and, for the training cases, every weight's gradient of
//! `Σ (y - t)² / (2 · batch) + activity loss` as `jax.grad` computes it. Then finite
//! differences, the statistics and determinism of Dropout in training, and `fit` through a
//! `Lambda` with a backward function.

mod common;
use common::{
    assert_close, case, check_gradients, check_keras_gradients, check_model_case, floats, golden,
    load,
};
use kiln::{FitOptions, Gradients, Loss, Model, Pass, Sample, Sgd, Trainable};
use serde_json::Value;

/// The antirectifier of the Keras example on the last axis of each position: centre,
/// l2-normalise, then the positive and the negative part side by side (`F2 = 2 * F`).
fn antirectifier<const F: usize, const T: usize, const F2: usize>(
    x: &Sample<F, T>,
) -> Sample<F2, T> {
    let mut y = Sample::<F2, T>::zeros();
    for (c, column) in x.column_iter().enumerate() {
        let centred = column.add_scalar(-column.mean());
        let norm = centred.norm_squared().max(1e-12).sqrt();
        for i in 0..F {
            let u = centred[i] / norm;
            y[(i, c)] = u.max(0.0);
            y[(i + F, c)] = (-u).max(0.0);
        }
    }
    y
}

/// The antirectifier's vector-Jacobian product, with JAX's conventions (relu' (0) = 0, and
/// no gradient through the `max` with 1e-12 when it is the epsilon that wins).
fn antirectifier_backward<const F: usize, const T: usize, const F2: usize>(
    x: &Sample<F, T>,
    dy: &Sample<F2, T>,
) -> Sample<F, T> {
    let mut dx = Sample::<F, T>::zeros();
    for c in 0..T {
        let column = x.column(c);
        let centred = column.add_scalar(-column.mean());
        let squares = centred.norm_squared();
        let norm = squares.max(1e-12).sqrt();
        let u = centred / norm;
        let du: Vec<f32> = (0..F)
            .map(|i| {
                let pos = if u[i] > 0.0 { dy[(i, c)] } else { 0.0 };
                let neg = if u[i] < 0.0 { dy[(i + F, c)] } else { 0.0 };
                pos - neg
            })
            .collect();
        let dot: f32 = (0..F).map(|i| u[i] * du[i]).sum();
        let dc: Vec<f32> = (0..F)
            .map(|i| {
                if squares > 1e-12 {
                    (du[i] - u[i] * dot) / norm
                } else {
                    du[i] / norm
                }
            })
            .collect();
        let mean = dc.iter().sum::<f32>() / F as f32;
        for i in 0..F {
            dx[(i, c)] = dc[i] - mean;
        }
    }
    dx
}

/// `(x, x²)` along the last axis: a shape-changing Lambda with a simple backward.
fn with_square(x: &Sample<3, 2>) -> Sample<6, 2> {
    Sample::<6, 2>::from_fn(|r, c| {
        if r < 3 {
            x[(r, c)]
        } else {
            x[(r - 3, c)].powi(2)
        }
    })
}

fn with_square_backward(x: &Sample<3, 2>, dy: &Sample<6, 2>) -> Sample<3, 2> {
    Sample::<3, 2>::from_fn(|r, c| dy[(r, c)] + 2.0 * x[(r, c)] * dy[(r + 3, c)])
}

kiln::model! {
    MaskingOnly = Sequential([Input(shape = (5, 3)), Masking()]);
    MaskingRank3 = Sequential([Input(shape = (2, 3, 4)), Masking(mask_value = 1.5)]);
    MaskingDense = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        Dense(4, activation = "tanh"),
    ]);
    DenseMaskingDense = Sequential([
        Input(shape = (5, 2)),
        Dense(3),
        Masking(),
        Dense(2, activation = "sigmoid"),
    ]);
    MaskingDropoutActivityDense = Sequential([
        Input(shape = (4, 3)),
        Masking(),
        Dropout(0.2),
        ActivityRegularization(l2 = 0.1),
        Dense(3),
    ]);
    MaskedSoftmaxLast = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        Dense(4),
        Softmax(axis = -1),
    ]);
    MaskedSoftmaxTime = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        Dense(4),
        Softmax(axis = 1),
    ]);
    DropoutInference = Sequential([
        Input(shape = (6,)),
        Dense(8, activation = "relu"),
        Dropout(0.5),
        Dense(3),
    ]);
    ActivityRegularized = Sequential([
        Input(shape = (3, 4)),
        Dense(5),
        ActivityRegularization(l1 = 0.01, l2 = 0.02),
    ]);
    DenseDropoutActivityDense = Sequential([
        Input(shape = (6,)),
        Dense(8, activation = "tanh"),
        Dropout(0.3, noise_shape = (None, 8)),
        ActivityRegularization(l1 = 0.05, l2 = 0.1),
        Dense(2),
    ]);
    Antirectifier = Sequential([
        Input(shape = (8,)),
        Dense(16),
        Lambda(antirectifier, output_shape = (32,), backward = antirectifier_backward),
        Dense(4, activation = "softmax"),
    ]);
    AntirectifierSequence = Sequential([
        Input(shape = (3, 4)),
        Lambda(antirectifier, output_shape = (3, 8), backward = antirectifier_backward),
        Dense(2),
    ]);
}

/// Outputs, shapes, weight names and layer names against Keras, at rtol 1e-5.
fn parity<M: Model>(case: &Value, atol: f32) {
    check_model_case::<M>(case, 1e-5, atol);
    check_names::<M>(case);
}

/// Kiln's automatic layer names against Keras's.
fn check_names<M: Model>(case: &Value) {
    let names: Vec<&str> = M::LAYERS.iter().map(|l| l.name).collect();
    let expected: Vec<&str> = case["layer_names"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(names, expected, "{}: layer names", case["name"]);
}

/// The Keras mask of the case against `predict_batch_with_mask`'s.
fn check_mask<M: Model>(case: &Value) {
    let name = case["name"].as_str().unwrap_or("case");
    let model: M = load(case);
    let (y, mask) = model
        .predict_batch_with_mask(&floats(&case["x"]))
        .expect("predict_batch_with_mask");
    assert_close(
        &format!("{name}: outputs"),
        &y,
        &floats(&case["y"]),
        1e-5,
        1e-6,
    );
    let expected: Vec<bool> = case["mask"]
        .as_array()
        .expect("mask")
        .iter()
        .map(|v| v.as_u64() == Some(1))
        .collect();
    assert_eq!(mask, Some(expected), "{name}: mask");
}

/// The case's activity loss against `Model::activity_loss`.
fn check_activity_loss<M: Model>(case: &Value) {
    let model: M = load(case);
    let loss = model
        .activity_loss(&floats(&case["x"]))
        .expect("activity_loss");
    let name = case["name"].as_str().unwrap_or("case");
    assert_close(
        &format!("{name}: activity loss"),
        &[loss],
        &[case["activity_loss"].as_f64().expect("activity_loss") as f32],
        1e-5,
        0.0,
    );
}

#[test]
fn masking_matches_keras_outputs_and_masks() {
    let file = golden("misc_layers");
    let masking = case(&file, "masking");
    parity::<MaskingOnly>(&masking, 0.0);
    check_mask::<MaskingOnly>(&masking);
    let rank3 = case(&file, "masking_value_rank3");
    parity::<MaskingRank3>(&rank3, 0.0);
    check_mask::<MaskingRank3>(&rank3);
    let dense = case(&file, "masking_dense");
    parity::<MaskingDense>(&dense, 1e-6);
    check_mask::<MaskingDense>(&dense);
    let through = case(&file, "masking_dropout_activity_dense");
    parity::<MaskingDropoutActivityDense>(&through, 1e-6);
    check_mask::<MaskingDropoutActivityDense>(&through);
    check_activity_loss::<MaskingDropoutActivityDense>(&through);
}

#[test]
fn masked_softmax_matches_keras_on_both_axes() {
    let file = golden("misc_layers");
    let last = case(&file, "masking_dense_softmax_last");
    parity::<MaskedSoftmaxLast>(&last, 1e-6);
    check_mask::<MaskedSoftmaxLast>(&last);
    let time = case(&file, "masking_dense_softmax_time");
    parity::<MaskedSoftmaxTime>(&time, 1e-6);
    check_mask::<MaskedSoftmaxTime>(&time);
}

#[test]
fn masking_gradients_match_keras() {
    let file = golden("misc_layers");
    check_keras_gradients::<MaskingDense>(&case(&file, "masking_dense"), 1e-4, 1e-6);
    // The first Dense has a zero bias, so all-zero timesteps stay zero and are masked:
    // Keras passes them no gradient, which changes the first Dense's gradients.
    let inner = case(&file, "dense_masking_dense");
    parity::<DenseMaskingDense>(&inner, 1e-6);
    check_mask::<DenseMaskingDense>(&inner);
    check_keras_gradients::<DenseMaskingDense>(&inner, 1e-4, 1e-6);
    check_keras_gradients::<MaskingDropoutActivityDense>(
        &case(&file, "masking_dropout_activity_dense"),
        1e-4,
        1e-6,
    );
}

#[test]
fn dropout_is_the_identity_in_inference() {
    let file = golden("misc_layers");
    parity::<DropoutInference>(&case(&file, "dropout_inference"), 1e-6);
}

#[test]
fn activity_regularization_loss_and_gradients_match_keras() {
    let file = golden("misc_layers");
    let alone = case(&file, "activity_regularization");
    parity::<ActivityRegularized>(&alone, 1e-6);
    check_activity_loss::<ActivityRegularized>(&alone);
    check_keras_gradients::<ActivityRegularized>(&alone, 1e-4, 1e-6);
    let chain = case(&file, "dense_dropout_activity_dense");
    parity::<DenseDropoutActivityDense>(&chain, 1e-6);
    check_activity_loss::<DenseDropoutActivityDense>(&chain);
    check_keras_gradients::<DenseDropoutActivityDense>(&chain, 1e-4, 1e-6);
    // One-sample predict adds nothing anywhere; an empty batch has no loss.
    let model: ActivityRegularized = load(&alone);
    assert_eq!(model.activity_loss(&[]).expect("empty batch"), 0.0);
}

#[test]
fn antirectifier_lambda_matches_keras_forward_and_backward() {
    let file = golden("misc_layers");
    let flat = case(&file, "antirectifier");
    parity::<Antirectifier>(&flat, 1e-6);
    check_keras_gradients::<Antirectifier>(&flat, 1e-4, 1e-6);
    let sequence = case(&file, "antirectifier_sequence");
    parity::<AntirectifierSequence>(&sequence, 1e-6);
    check_keras_gradients::<AntirectifierSequence>(&sequence, 1e-4, 1e-6);
}

kiln::model! {
    SquareLambda = Sequential([
        Input(shape = (2, 3)),
        Dense(3, activation = "tanh"),
        Lambda(with_square, output_shape = (2, 6), backward = with_square_backward),
        Dense(2),
    ]);
    ClosureLambda = Sequential([
        Input(shape = (4,)),
        Dense(4),
        Lambda(|x| x.map(|v| v.sin()), backward = |x, dy| x.map(|v| v.cos()).component_mul(dy)),
        Dense(1),
    ]);
    LambdaFirst = Sequential([
        Input(shape = (2, 3)),
        Lambda(with_square, output_shape = (2, 6), backward = with_square_backward),
        Dense(1),
    ]);
    DropoutBetween = Sequential([
        Input(shape = (5,)),
        Dense(6, activation = "tanh"),
        Dropout(0.5),
        Dense(6, activation = "sigmoid"),
        Dropout(0.25, noise_shape = (1, 6), seed = 3),
        Dense(2),
    ]);
    RegularizedBetween = Sequential([
        Input(shape = (2, 3)),
        Dense(4, activation = "tanh"),
        ActivityRegularization(l1 = 0.3, l2 = 0.5),
        Dense(2),
        ActivityRegularization(l2 = 0.2),
    ]);
    MaskingSecond = Sequential([
        Input(shape = (4, 2)),
        Dense(3, use_bias = False),
        Masking(),
        Dense(2, activation = "tanh"),
    ]);
}

#[test]
fn weightless_layers_pass_finite_difference_checks() {
    // Outside `fit` the pass is not training: Dropout is the identity in these checks.
    check_gradients::<SquareLambda>(3, 4, 12, 2e-3);
    check_gradients::<ClosureLambda>(4, 3, 12, 2e-3);
    check_gradients::<LambdaFirst>(5, 3, 12, 2e-3);
    check_gradients::<DropoutBetween>(6, 4, 12, 2e-3);
    check_gradients::<MaskingSecond>(7, 4, 12, 2e-3);
}

/// `f` with every weight of `model` set to `values` (the weight `name`), the others kept.
fn with_weight<M: Model>(
    model: &mut M,
    name: &str,
    values: &[f32],
    f: impl FnOnce(&M) -> f64,
) -> f64 {
    let old = model.get_weight(name).expect("get_weight");
    model.set_weight(name, values).expect("set_weight");
    let result = f(model);
    model.set_weight(name, &old).expect("set_weight");
    result
}

/// Compares the generated gradients (one `__train_batch` with `pass`) with central finite
/// differences of the loss `Σ (y - t)² / (2 · batch)` plus the activity loss, where `y` and
/// the activity loss come from the same kind of pass (so a training pass keeps its dropout
/// mask: same seed and step). `eps` is the step of the differences: keep it small where an
/// L1 penalty's kink at 0 is near.
fn check_training_pass<M: Trainable>(
    seed: u64,
    samples: usize,
    pass: Pass,
    eps: f32,
    tolerance: f64,
) {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut model = M::new(seed);
    let x: Vec<f32> = (0..samples * M::INPUT_LEN)
        .map(|_| rng.random_range(-1.5f32..1.5))
        .collect();
    let t: Vec<f32> = (0..samples * M::OUTPUT_LEN)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    // Loss and gradients of one training-mode batch.
    let run = |model: &M, grads: &mut Gradients| -> f64 {
        let mut head_loss = 0.0f64;
        let mut head = |y: &[f32], dy: &mut [f32]| {
            head_loss = y
                .iter()
                .zip(&t)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum::<f64>()
                / (2.0 * samples as f64);
            for ((d, a), b) in dy.iter_mut().zip(y).zip(&t) {
                *d = (a - b) / samples as f32;
            }
            false
        };
        let mut p = pass.clone();
        model.__train_batch(&x, &mut p, &mut head, grads);
        head_loss + p.activity_loss as f64
    };
    let mut grads = Gradients::for_model::<M>();
    run(&model, &mut grads);
    for (index, name) in M::WEIGHT_NAMES.iter().enumerate() {
        let values = model.get_weight(name).expect("get_weight");
        for i in 0..values.len() {
            let mut w = values.clone();
            w[i] = values[i] + eps;
            let plus = with_weight(&mut model, name, &w, |m| {
                run(m, &mut Gradients::for_model::<M>())
            });
            w[i] = values[i] - eps;
            let minus = with_weight(&mut model, name, &w, |m| {
                run(m, &mut Gradients::for_model::<M>())
            });
            let numeric = (plus - minus) / (2.0 * eps as f64);
            let analytic = grads.get(index)[i] as f64;
            let scale = 1.0f64.max(numeric.abs()).max(analytic.abs());
            assert!(
                (numeric - analytic).abs() <= tolerance * scale,
                "{name}[{i}]: backward {analytic:e}, finite difference {numeric:e}"
            );
        }
    }
}

#[test]
fn activity_gradient_matches_finite_differences_of_the_full_loss() {
    check_training_pass::<RegularizedBetween>(8, 3, Pass::default(), 1e-3, 2e-3);
    check_training_pass::<DenseDropoutActivityDense>(9, 4, Pass::default(), 1e-3, 2e-3);
}

#[test]
fn dropout_backward_uses_the_training_mask() {
    let pass = |step| Pass {
        training: true,
        activity_loss: 0.0,
        seed: 12,
        step,
        ..Pass::default()
    };
    check_training_pass::<DropoutBetween>(10, 4, pass(0), 1e-2, 2e-3);
    check_training_pass::<DropoutBetween>(11, 3, pass(7), 1e-2, 2e-3);
    check_training_pass::<DenseDropoutActivityDense>(12, 4, pass(1), 1e-3, 2e-3);
}

kiln::model! {
    DropoutOnly = Sequential([Input(shape = (40, 25)), Dropout(0.3)]);
    DropoutTimesteps = Sequential([
        Input(shape = (6, 5)),
        Dropout(0.5, noise_shape = (None, 1, 5)),
    ]);
    DropoutSharedBatch = Sequential([
        Input(shape = (8,)),
        Dropout(0.5, noise_shape = (1, None)),
    ]);
    DropoutZero = Sequential([
        Input(shape = (3,)),
        Dense(4, activation = "tanh"),
        Dropout(0.0),
        Dense(2),
    ]);
    NoDropout = Sequential([
        Input(shape = (3,)),
        Dense(4, activation = "tanh"),
        Dense(2),
    ]);
}

/// The output of a training-mode forward pass of `x` (what the loss head sees).
fn training_output<M: Trainable>(x: &[f32], seed: u64, step: u64) -> Vec<f32> {
    let model = M::new(0);
    let mut seen = Vec::new();
    let mut head = |y: &[f32], dy: &mut [f32]| {
        seen = y.to_vec();
        dy.fill(0.0);
        false
    };
    let mut pass = Pass {
        training: true,
        activity_loss: 0.0,
        seed,
        step,
        ..Pass::default()
    };
    model.__train_batch(x, &mut pass, &mut head, &mut Gradients::for_model::<M>());
    seen
}

#[test]
fn dropout_keeps_one_minus_rate_scaled_by_its_inverse() {
    let x: Vec<f32> = (0..4 * 1000).map(|i| 1.0 + (i % 7) as f32).collect();
    let y = training_output::<DropoutOnly>(&x, 1, 0);
    let kept = y.iter().filter(|v| **v != 0.0).count();
    let fraction = kept as f64 / y.len() as f64;
    // 4000 Bernoulli(0.7) draws: the standard deviation of the fraction is 0.0072.
    assert!((fraction - 0.7).abs() < 0.03, "kept {fraction}");
    for (a, b) in y.iter().zip(&x) {
        assert!(
            *a == 0.0 || (a - b / 0.7).abs() <= 1e-6 * a.abs(),
            "{a} from {b}"
        );
    }
    // Deterministic for a seed and step; new draws for the next step.
    assert_eq!(y, training_output::<DropoutOnly>(&x, 1, 0));
    assert_ne!(y, training_output::<DropoutOnly>(&x, 1, 1));
    assert_ne!(y, training_output::<DropoutOnly>(&x, 2, 0));
    // `predict_batch` never drops.
    assert_eq!(DropoutOnly::new(0).predict_batch(&x).expect("predict"), x);
}

#[test]
fn dropout_noise_shape_shares_draws_along_its_ones() {
    let x = vec![1.0f32; 3 * 30];
    let y = training_output::<DropoutTimesteps>(&x, 4, 2);
    for sample in y.chunks(30) {
        for step in sample.chunks(5) {
            assert_eq!(step, &sample[..5], "every timestep drops the same features");
        }
    }
    assert_ne!(y[..30], y[30..60], "samples draw their own masks");
    let x = vec![1.0f32; 4 * 8];
    let y = training_output::<DropoutSharedBatch>(&x, 4, 2);
    for sample in y.chunks(8) {
        assert_eq!(sample, &y[..8], "one mask for the whole batch");
    }
    assert!(y.contains(&0.0) && y.contains(&2.0));
}

#[test]
fn dropout_zero_trains_exactly_like_no_dropout() {
    let x: Vec<f32> = (0..30).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
    let y: Vec<f32> = (0..20).map(|i| ((i * 3) % 5) as f32 / 4.0).collect();
    let options = FitOptions {
        epochs: 5,
        batch_size: 4,
        verbose: false,
        seed: 3,
        ..Default::default()
    };
    let sgd = || Sgd {
        learning_rate: 0.1,
        ..Sgd::default()
    };
    let mut with = DropoutZero::new(5).compile(sgd(), Loss::MeanSquaredError);
    let mut without = NoDropout::new(5).compile(sgd(), Loss::MeanSquaredError);
    let a = with.fit(&x, &y, &options).expect("fit");
    let b = without.fit(&x, &y, &options).expect("fit");
    assert_eq!(a, b);
    for name in NoDropout::WEIGHT_NAMES {
        assert_eq!(
            with.model().get_weight(name).expect("weight"),
            without.model().get_weight(name).expect("weight"),
            "{name}"
        );
    }
}

#[test]
fn fit_with_dropout_is_deterministic_per_seed() {
    let x: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
    let y: Vec<f32> = (0..16).map(|i| ((i * 3) % 5) as f32 / 4.0).collect();
    let run = |seed| {
        let mut trainer = DropoutBetween::new(1).compile(Sgd::default(), Loss::MeanSquaredError);
        let options = FitOptions {
            epochs: 3,
            batch_size: 3,
            verbose: false,
            seed,
            ..Default::default()
        };
        trainer.fit(&x, &y, &options).expect("fit");
        trainer
            .into_model()
            .get_weight("dense_2/kernel")
            .expect("weight")
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn a_lambda_with_backward_trains() {
    let x: Vec<f32> = (0..8 * 6)
        .map(|i| ((i * 5) % 13) as f32 / 6.0 - 1.0)
        .collect();
    let y: Vec<f32> = x
        .chunks(6)
        .flat_map(|s| {
            let total: f32 = s.iter().map(|v| v * v).sum();
            [total / 6.0, s[0]]
        })
        .map(|v| v * 0.5)
        .collect();
    // `y` is (8 samples, 2 positions, 2) — one row per position of `SquareLambda`'s output.
    let y: Vec<f32> = y.iter().chain(y.iter()).copied().collect();
    let mut trainer = SquareLambda::new(2).compile(
        Sgd {
            learning_rate: 0.1,
            ..Sgd::default()
        },
        Loss::MeanSquaredError,
    );
    let options = FitOptions {
        epochs: 60,
        batch_size: 4,
        verbose: false,
        ..Default::default()
    };
    let history = trainer.fit(&x, &y, &options).expect("fit");
    let losses = history.get("loss").expect("loss");
    assert!(
        losses[59] < 0.5 * losses[0],
        "loss {} -> {}",
        losses[0],
        losses[59]
    );
}

#[test]
fn lambda_applies_per_sample_in_every_mode() {
    let model = SquareLambda::new(4);
    let x: Vec<f32> = (0..3 * 6).map(|i| i as f32 / 9.0 - 1.0).collect();
    let batch = model.predict_batch(&x).expect("batch");
    for (xs, ys) in x.chunks(6).zip(batch.chunks(4)) {
        assert_eq!(model.predict_slice(xs).expect("one"), ys);
    }
    assert_eq!(SquareLambda::OUTPUT_SHAPE, &[2, 2]);
    assert_eq!(SquareLambda::LAYERS[1].output_shape, &[2, 6]);
    assert_eq!(SquareLambda::LAYERS[1].class, "Lambda");
    assert_eq!(SquareLambda::LAYERS[1].name, "lambda");
}
