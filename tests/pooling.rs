//! Pooling, global pooling, zero padding, upsampling and cropping against Keras 3
//! (tests/golden/pooling.json, from tools/oracle/pooling.py): every layer and argument
//! combination alone (outputs, shapes, names, and its backward kernel against the
//! vector-Jacobian product `jax.grad` computes, ties included), then chains between Dense
//! layers whose weight gradients flow back through every kind (against `jax.grad` and
//! finite differences), and `GlobalAveragePooling1D` under a `Masking` mask.

mod common;

use common::{assert_close, case, check_gradients, check_model_case, dims, floats, golden, load};
use kiln::layers::cropping::Cropping;
use kiln::layers::global_pooling::GlobalPooling;
use kiln::layers::padding::ZeroPadding;
use kiln::layers::pooling::{Grid, PoolMode, Pooling};
use kiln::layers::upsampling::UpSampling;
use kiln::{Gradients, Model, Pass, Trainable};
use serde_json::Value;

kiln::model! {
    MaxPool1dDefault = Sequential([Input(shape = (7, 3)), MaxPooling1D()]);
    MaxPool1dSameStrides = Sequential([
        Input(shape = (8, 3)),
        MaxPooling1D(3, strides = 2, padding = "same"),
    ]);
    MaxPool1dChannelsFirst = Sequential([
        Input(shape = (3, 6)),
        MaxPooling1D(2, strides = 1, data_format = "channels_first"),
    ]);
    MaxPool2dDefault = Sequential([Input(shape = (5, 6, 2)), MaxPooling2D()]);
    MaxPool2dSame = Sequential([
        Input(shape = (5, 5, 2)),
        MaxPooling2D((3, 2), strides = (2, 1), padding = "same"),
    ]);
    MaxPool2dChannelsFirst = Sequential([
        Input(shape = (2, 4, 5)),
        MaxPooling2D((2, 2), strides = 1, data_format = "channels_first"),
    ]);
    AvgPool1dValidStrides = Sequential([Input(shape = (9, 2)), AveragePooling1D(3, strides = 2)]);
    AvgPool1dSame = Sequential([
        Input(shape = (5, 2)),
        AveragePooling1D(4, strides = 1, padding = "same"),
    ]);
    AvgPool1dChannelsFirstSame = Sequential([
        Input(shape = (2, 7)),
        AveragePooling1D(2, padding = "same", data_format = "channels_first"),
    ]);
    AvgPool2dValid = Sequential([
        Input(shape = (4, 7, 3)),
        AveragePooling2D((2, 3), strides = (1, 2)),
    ]);
    AvgPool2dSame = Sequential([
        Input(shape = (6, 5, 2)),
        AveragePooling2D(3, strides = 2, padding = "same"),
    ]);
    AvgPool2dChannelsFirstSame = Sequential([
        Input(shape = (3, 5, 5)),
        AveragePooling2D(2, padding = "same", data_format = "channels_first"),
    ]);
    GlobalMaxPool1d = Sequential([Input(shape = (6, 3)), GlobalMaxPooling1D()]);
    GlobalMaxPool1dChannelsFirstKeepdims = Sequential([
        Input(shape = (3, 6)),
        GlobalMaxPooling1D(data_format = "channels_first", keepdims = True),
    ]);
    GlobalAvgPool1d = Sequential([Input(shape = (6, 3)), GlobalAveragePooling1D()]);
    GlobalAvgPool1dKeepdims = Sequential([
        Input(shape = (6, 3)),
        GlobalAveragePooling1D(keepdims = True),
    ]);
    GlobalAvgPool1dChannelsFirst = Sequential([
        Input(shape = (3, 6)),
        GlobalAveragePooling1D(data_format = "channels_first"),
    ]);
    GlobalMaxPool2d = Sequential([Input(shape = (4, 5, 3)), GlobalMaxPooling2D()]);
    GlobalMaxPool2dChannelsFirstKeepdims = Sequential([
        Input(shape = (3, 4, 5)),
        GlobalMaxPooling2D(data_format = "channels_first", keepdims = True),
    ]);
    GlobalAvgPool2d = Sequential([Input(shape = (4, 5, 3)), GlobalAveragePooling2D()]);
    GlobalAvgPool2dChannelsFirstKeepdims = Sequential([
        Input(shape = (3, 4, 5)),
        GlobalAveragePooling2D(data_format = "channels_first", keepdims = True),
    ]);
    GlobalAvgPool1dMasked = Sequential([
        Input(shape = (6, 3)),
        Masking(),
        GlobalAveragePooling1D(),
    ]);
    GlobalAvgPool1dMaskedKeepdims = Sequential([
        Input(shape = (5, 2)),
        Masking(),
        GlobalAveragePooling1D(keepdims = True),
    ]);
    MaxPool1dTies = Sequential([
        Input(shape = (8, 2)),
        MaxPooling1D(3, strides = 1, padding = "same"),
    ]);
    MaxPool2dTies = Sequential([Input(shape = (4, 5, 2)), MaxPooling2D((2, 3), strides = 1)]);
    GlobalMaxPool1dTies = Sequential([Input(shape = (7, 3)), GlobalMaxPooling1D()]);
    GlobalMaxPool2dTies = Sequential([Input(shape = (3, 4, 2)), GlobalMaxPooling2D()]);
    ZeroPadding1dDefault = Sequential([Input(shape = (4, 3)), ZeroPadding1D()]);
    ZeroPadding1dPair = Sequential([Input(shape = (4, 3)), ZeroPadding1D((2, 0))]);
    ZeroPadding1dChannelsFirst = Sequential([
        Input(shape = (3, 4)),
        ZeroPadding1D((1, 2), data_format = "channels_first"),
    ]);
    ZeroPadding2dDefault = Sequential([Input(shape = (3, 4, 2)), ZeroPadding2D()]);
    ZeroPadding2dInt = Sequential([Input(shape = (3, 4, 2)), ZeroPadding2D(2)]);
    ZeroPadding2dPairs = Sequential([Input(shape = (3, 4, 2)), ZeroPadding2D(((1, 0), (0, 2)))]);
    ZeroPadding2dChannelsFirst = Sequential([
        Input(shape = (2, 3, 4)),
        ZeroPadding2D((1, 2), data_format = "channels_first"),
    ]);
    UpSampling1dDefault = Sequential([Input(shape = (3, 2)), UpSampling1D()]);
    UpSampling1dSize3 = Sequential([Input(shape = (3, 2)), UpSampling1D(3)]);
    UpSampling2dDefault = Sequential([Input(shape = (2, 3, 2)), UpSampling2D()]);
    UpSampling2dChannelsFirst = Sequential([
        Input(shape = (2, 2, 3)),
        UpSampling2D((3, 1), data_format = "channels_first"),
    ]);
    Cropping1dDefault = Sequential([Input(shape = (6, 2)), Cropping1D()]);
    Cropping1dPair = Sequential([Input(shape = (6, 2)), Cropping1D((0, 4))]);
    Cropping2dInt = Sequential([Input(shape = (5, 6, 2)), Cropping2D(1)]);
    Cropping2dPairsChannelsFirst = Sequential([
        Input(shape = (2, 5, 6)),
        Cropping2D(((2, 0), (1, 3)), data_format = "channels_first"),
    ]);
}

kiln::model! {
    SequenceChain = Sequential([
        Input(shape = (10, 3)),
        Dense(4, activation = "tanh"),
        ZeroPadding1D((1, 2)),
        MaxPooling1D(3, strides = 2, padding = "same"),
        UpSampling1D(2),
        Cropping1D((1, 0)),
        AveragePooling1D(2),
        GlobalAveragePooling1D(),
        Dense(2),
    ]);
    ImageChain = Sequential([
        Input(shape = (6, 6, 2)),
        Dense(3, activation = "tanh"),
        ZeroPadding2D(1),
        MaxPooling2D(2),
        UpSampling2D((2, 1)),
        Cropping2D(((1, 0), (0, 1))),
        AveragePooling2D(2, padding = "same"),
        GlobalMaxPooling2D(),
        Dense(2),
    ]);
    ChannelsFirstChain = Sequential([
        Input(shape = (3, 5, 6)),
        Dense(4),
        ZeroPadding2D(((0, 1), (2, 0)), data_format = "channels_first"),
        AveragePooling2D((2, 3), strides = (2, 1), data_format = "channels_first"),
        UpSampling2D(2, data_format = "channels_first"),
        Cropping2D((1, 2), data_format = "channels_first"),
        MaxPooling2D((3, 2), padding = "same", data_format = "channels_first"),
        GlobalAveragePooling2D(data_format = "channels_first", keepdims = True),
        Dense(2, activation = "sigmoid"),
    ]);
    ChannelsFirstSequenceChain = Sequential([
        Input(shape = (4, 7)),
        Dense(6),
        MaxPooling1D(2, data_format = "channels_first"),
        ZeroPadding1D(1, data_format = "channels_first"),
        AveragePooling1D(3, strides = 1, padding = "same", data_format = "channels_first"),
        GlobalMaxPooling1D(data_format = "channels_first", keepdims = True),
        Dense(3),
    ]);
    MaskedMeanClassifier = Sequential([
        Input(shape = (6, 3)),
        Masking(),
        Dense(4, activation = "tanh"),
        GlobalAveragePooling1D(),
        Dense(2),
    ]);
    MaskedMeanKeepdims = Sequential([
        Input(shape = (5, 2)),
        Masking(),
        Dense(3),
        GlobalAveragePooling1D(keepdims = True),
        Dense(2, activation = "tanh"),
    ]);
}

const RTOL: f32 = 1e-5;
/// Sums and means round differently in XLA; values near zero need an absolute floor.
const ATOL: f32 = 1e-6;

/// Outputs, shapes, weight names and layer names against Keras, and no mask at the output
/// (Keras: `GlobalAveragePooling1D` consumes it, the other layers here never see one).
fn parity<M: Model>(case: &Value) {
    check_model_case::<M>(case, RTOL, ATOL);
    let names: Vec<&str> = M::LAYERS.iter().map(|l| l.name).collect();
    let expected: Vec<&str> = case["layer_names"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let name = case["name"].as_str().unwrap_or("case");
    assert_eq!(names, expected, "{name}: layer names");
    let model = load::<M>(case);
    let (_, mask) = model
        .predict_batch_with_mask(&floats(&case["x"]))
        .expect("predict_batch_with_mask");
    assert_eq!(
        mask.is_some(),
        case["has_output_mask"].as_bool().unwrap_or(false),
        "{name}: output mask"
    );
}

fn flag(v: &Value) -> bool {
    v.as_bool()
        .unwrap_or_else(|| panic!("expected a bool, found {v}"))
}

fn pair(v: &Value) -> [usize; 2] {
    let d = dims(v);
    [d[0], d[1]]
}

fn sides(v: &Value) -> [[usize; 2]; 2] {
    let a = v.as_array().expect("sides");
    [pair(&a[0]), pair(&a[1])]
}

/// The case's layer kernel, built from Keras's configuration (the oracle's `kernel`), run
/// backward on Keras's cotangent `dy`: the input gradient must be `jax.grad`'s.
fn check_input_gradient(case: &Value) {
    let name = case["name"].as_str().unwrap_or("case");
    let k = &case["kernel"];
    let g = &k["grid"];
    let size = |i: usize| g[i].as_u64().expect("grid extent") as usize;
    let grid = Grid::new(size(0), size(1), size(2), flag(&g[3]));
    let x = floats(&case["x"]);
    let dy = floats(&case["dy"]);
    let mut dx = vec![f32::NAN; x.len()];
    let mode = |k: &Value| {
        if flag(&k["max"]) {
            PoolMode::Max
        } else {
            PoolMode::Average
        }
    };
    let mask: Option<Vec<bool>> = case
        .get("mask")
        .and_then(Value::as_array)
        .map(|m| m.iter().map(|v| v.as_u64() == Some(1)).collect());
    match k["kind"].as_str().expect("kernel kind") {
        "pooling" => Pooling::new(
            mode(k),
            grid,
            pair(&k["pool"]),
            pair(&k["strides"]),
            flag(&k["same"]),
        )
        .backward(&x, &dy, &mut dx),
        "global" => GlobalPooling::new(mode(k), grid).backward(&x, mask.as_deref(), &dy, &mut dx),
        "padding" => ZeroPadding::new(grid, sides(&k["sides"])).backward(&dy, &mut dx),
        "cropping" => Cropping::new(grid, sides(&k["sides"])).backward(&dy, &mut dx),
        "upsampling" => UpSampling::new(grid, pair(&k["size"])).backward(&dy, &mut dx),
        other => panic!("{name}: unknown kernel {other}"),
    }
    assert_close(
        &format!("{name}: input gradient"),
        &dx,
        &floats(&case["dx"]),
        RTOL,
        ATOL,
    );
}

/// Runs the generated backward pass with the loss `Σ (y - t)² / (2 · batch)` and compares
/// every weight's gradient with Keras's.
fn check_keras_gradients<M: Trainable>(case: &Value, rtol: f32, atol: f32) {
    let name = case["name"].as_str().unwrap_or("case");
    let model: M = load(case);
    let x = floats(&case["x"]);
    let t = floats(&case["t"]);
    let samples = x.len() / M::INPUT_LEN;
    let mut grads = Gradients::for_model::<M>();
    let mut head = |y: &[f32], dy: &mut [f32]| {
        for ((d, a), b) in dy.iter_mut().zip(y).zip(&t) {
            *d = (a - b) / samples as f32;
        }
        false
    };
    model.__train_batch(&x, &mut Pass::default(), &mut head, &mut grads);
    for (index, weight) in M::WEIGHT_NAMES.iter().enumerate() {
        assert_close(
            &format!("{name}: gradient of {weight}"),
            grads.get(index),
            &floats(&case["grads"][*weight]),
            rtol,
            atol,
        );
    }
}

/// A golden case's name and the check of its model.
type NamedCheck = (&'static str, fn(&Value));

/// Every single-layer case: its model's parity check, by case name.
const LAYER_CASES: &[NamedCheck] = &[
    ("max_pool1d_default", parity::<MaxPool1dDefault>),
    ("max_pool1d_same_strides", parity::<MaxPool1dSameStrides>),
    (
        "max_pool1d_channels_first",
        parity::<MaxPool1dChannelsFirst>,
    ),
    ("max_pool2d_default", parity::<MaxPool2dDefault>),
    ("max_pool2d_same", parity::<MaxPool2dSame>),
    (
        "max_pool2d_channels_first",
        parity::<MaxPool2dChannelsFirst>,
    ),
    ("avg_pool1d_valid_strides", parity::<AvgPool1dValidStrides>),
    ("avg_pool1d_same", parity::<AvgPool1dSame>),
    (
        "avg_pool1d_channels_first_same",
        parity::<AvgPool1dChannelsFirstSame>,
    ),
    ("avg_pool2d_valid", parity::<AvgPool2dValid>),
    ("avg_pool2d_same", parity::<AvgPool2dSame>),
    (
        "avg_pool2d_channels_first_same",
        parity::<AvgPool2dChannelsFirstSame>,
    ),
    ("global_max_pool1d", parity::<GlobalMaxPool1d>),
    (
        "global_max_pool1d_channels_first_keepdims",
        parity::<GlobalMaxPool1dChannelsFirstKeepdims>,
    ),
    ("global_avg_pool1d", parity::<GlobalAvgPool1d>),
    (
        "global_avg_pool1d_keepdims",
        parity::<GlobalAvgPool1dKeepdims>,
    ),
    (
        "global_avg_pool1d_channels_first",
        parity::<GlobalAvgPool1dChannelsFirst>,
    ),
    ("global_max_pool2d", parity::<GlobalMaxPool2d>),
    (
        "global_max_pool2d_channels_first_keepdims",
        parity::<GlobalMaxPool2dChannelsFirstKeepdims>,
    ),
    ("global_avg_pool2d", parity::<GlobalAvgPool2d>),
    (
        "global_avg_pool2d_channels_first_keepdims",
        parity::<GlobalAvgPool2dChannelsFirstKeepdims>,
    ),
    ("global_avg_pool1d_masked", parity::<GlobalAvgPool1dMasked>),
    (
        "global_avg_pool1d_masked_keepdims",
        parity::<GlobalAvgPool1dMaskedKeepdims>,
    ),
    ("max_pool1d_ties", parity::<MaxPool1dTies>),
    ("max_pool2d_ties", parity::<MaxPool2dTies>),
    ("global_max_pool1d_ties", parity::<GlobalMaxPool1dTies>),
    ("global_max_pool2d_ties", parity::<GlobalMaxPool2dTies>),
    ("zero_padding1d_default", parity::<ZeroPadding1dDefault>),
    ("zero_padding1d_pair", parity::<ZeroPadding1dPair>),
    (
        "zero_padding1d_channels_first",
        parity::<ZeroPadding1dChannelsFirst>,
    ),
    ("zero_padding2d_default", parity::<ZeroPadding2dDefault>),
    ("zero_padding2d_int", parity::<ZeroPadding2dInt>),
    ("zero_padding2d_pairs", parity::<ZeroPadding2dPairs>),
    (
        "zero_padding2d_channels_first",
        parity::<ZeroPadding2dChannelsFirst>,
    ),
    ("up_sampling1d_default", parity::<UpSampling1dDefault>),
    ("up_sampling1d_size3", parity::<UpSampling1dSize3>),
    ("up_sampling2d_default", parity::<UpSampling2dDefault>),
    (
        "up_sampling2d_channels_first",
        parity::<UpSampling2dChannelsFirst>,
    ),
    ("cropping1d_default", parity::<Cropping1dDefault>),
    ("cropping1d_pair", parity::<Cropping1dPair>),
    ("cropping2d_int", parity::<Cropping2dInt>),
    (
        "cropping2d_pairs_channels_first",
        parity::<Cropping2dPairsChannelsFirst>,
    ),
];

#[test]
fn every_layer_matches_keras_outputs() {
    let file = golden("pooling");
    for (name, check) in LAYER_CASES {
        check(&case(&file, name));
    }
    // Every single-layer case of the golden file has a model here.
    let cases = file["cases"].as_array().expect("cases");
    let layer_cases = cases.iter().filter(|c| c.get("kernel").is_some()).count();
    assert_eq!(layer_cases, LAYER_CASES.len());
}

#[test]
fn every_backward_kernel_matches_jax_grad() {
    let file = golden("pooling");
    for c in file["cases"].as_array().expect("cases") {
        if c.get("kernel").is_some() {
            check_input_gradient(c);
        }
    }
}

#[test]
fn masked_global_average_skips_masked_steps_like_keras() {
    let file = golden("pooling");
    let c = case(&file, "global_avg_pool1d_masked");
    // The last sample is fully masked: Keras's 0 / 0.
    let y = floats(&c["y"]);
    assert!(y[9..].iter().all(|v| v.is_nan()), "{y:?}");
    assert!(y[..9].iter().all(|v| v.is_finite()));
    // The mask is consumed: a model ending in the pooling has none.
    let model = GlobalAvgPool1dMasked::new(0);
    let (_, mask) = model
        .predict_batch_with_mask(&floats(&c["x"]))
        .expect("predict_batch_with_mask");
    assert_eq!(mask, None);
}

#[test]
fn chains_match_keras_outputs_and_weight_gradients() {
    let file = golden("pooling");
    let sequence = case(&file, "sequence_chain");
    parity::<SequenceChain>(&sequence);
    check_keras_gradients::<SequenceChain>(&sequence, 1e-4, 1e-6);
    let image = case(&file, "image_chain");
    parity::<ImageChain>(&image);
    check_keras_gradients::<ImageChain>(&image, 1e-4, 1e-6);
    let first = case(&file, "channels_first_chain");
    parity::<ChannelsFirstChain>(&first);
    check_keras_gradients::<ChannelsFirstChain>(&first, 1e-4, 1e-6);
    let first_sequence = case(&file, "channels_first_sequence_chain");
    parity::<ChannelsFirstSequenceChain>(&first_sequence);
    check_keras_gradients::<ChannelsFirstSequenceChain>(&first_sequence, 1e-4, 1e-6);
}

#[test]
fn masked_mean_models_match_keras_outputs_and_weight_gradients() {
    let file = golden("pooling");
    for (name, check, grads) in [
        (
            "masked_mean_classifier",
            parity::<MaskedMeanClassifier> as fn(&Value),
            check_keras_gradients::<MaskedMeanClassifier> as fn(&Value, f32, f32),
        ),
        (
            "masked_mean_keepdims",
            parity::<MaskedMeanKeepdims>,
            check_keras_gradients::<MaskedMeanKeepdims>,
        ),
    ] {
        let c = case(&file, name);
        check(&c);
        grads(&c, 1e-4, 1e-6);
    }
}

/// [`check_gradients`] for every entry of every weight, with a step of `eps`, then of
/// `eps / 10` where that one disagrees. Max pooling makes the loss piecewise smooth, and a
/// step can carry some window's maximum over to another value: with the shared helper's
/// 1e-2, a few entries of these chains differ by 10 % (measured); those agree at 1e-3 or,
/// for a maximum within 1e-3 of the next value, at 1e-4. Failing both steps is an error.
fn check_gradients_with_step<M: Trainable>(seed: u64, samples: usize, eps: f32, tolerance: f64) {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut model = M::new(seed);
    let x: Vec<f32> = (0..samples * M::INPUT_LEN)
        .map(|_| rng.random_range(-1.5f32..1.5))
        .collect();
    let t: Vec<f32> = (0..samples * M::OUTPUT_LEN)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let loss = |model: &M| -> f64 {
        let y = model.predict_batch(&x).expect("predict_batch");
        y.iter()
            .zip(&t)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / (2.0 * samples as f64)
    };
    let mut grads = Gradients::for_model::<M>();
    let mut head = |y: &[f32], dy: &mut [f32]| {
        for ((d, a), b) in dy.iter_mut().zip(y).zip(&t) {
            *d = (a - b) / samples as f32;
        }
        false
    };
    model.__train_batch(&x, &mut Pass::default(), &mut head, &mut grads);
    for (index, name) in M::WEIGHT_NAMES.iter().enumerate() {
        let values = model.get_weight(name).expect("get_weight");
        for i in 0..values.len() {
            let mut numeric_at = |eps: f32| {
                let mut w = values.clone();
                w[i] = values[i] + eps;
                model.set_weight(name, &w).expect("set_weight");
                let plus = loss(&model);
                w[i] = values[i] - eps;
                model.set_weight(name, &w).expect("set_weight");
                let minus = loss(&model);
                model.set_weight(name, &values).expect("set_weight");
                (plus - minus) / (2.0 * eps as f64)
            };
            let analytic = grads.get(index)[i] as f64;
            let agrees = |numeric: f64| {
                let scale = 1.0f64.max(numeric.abs()).max(analytic.abs());
                (numeric - analytic).abs() <= tolerance * scale
            };
            let coarse = numeric_at(eps);
            if agrees(coarse) {
                continue;
            }
            let fine = numeric_at(eps / 10.0);
            assert!(
                agrees(fine),
                "{}: {name}[{i}]: backward {analytic:e}, finite differences {coarse:e} (step {eps:e}), {fine:e} (step {:e})",
                M::NAME,
                eps / 10.0
            );
        }
    }
}

#[test]
fn chains_pass_finite_difference_checks() {
    check_gradients_with_step::<SequenceChain>(11, 3, 1e-3, 2e-3);
    check_gradients_with_step::<ImageChain>(12, 3, 1e-3, 2e-3);
    check_gradients_with_step::<ChannelsFirstChain>(13, 3, 1e-3, 2e-3);
    check_gradients_with_step::<ChannelsFirstSequenceChain>(14, 3, 1e-3, 2e-3);
    // No max: the shared helper's step is fine.
    check_gradients::<MaskedMeanClassifier>(15, 3, 12, 2e-3);
    check_gradients::<MaskedMeanKeepdims>(16, 3, 12, 2e-3);
}
