//! BatchNormalization and LayerNormalization against Keras 3 on JAX (golden data:
//! tests/golden/normalization.json, from tools/oracle/normalization.py):
//!
//! - inference outputs (BatchNormalization with its moving statistics) over several axes of
//!   rank-2 and rank-4 Keras inputs, without `center`/`scale`, and LayerNormalization over
//!   one, several and Keras-ordered mixed axes; weight names, shapes, trainability and
//!   parameter counts as Keras declares them;
//! - the training pass: outputs with the batch statistics, every trainable weight's gradient
//!   as `jax.grad` takes it through them, and the moving statistics after one update, masked
//!   statistics (after `Masking`) included;
//! - three SGD `train_on_batch` steps of Dense -> BatchNormalization -> Dense, every weight
//!   (moving statistics included) after each;
//!
//! then finite differences (BatchNormalization in training mode), the summary's trainable
//! and non-trainable counts, hyphenated layer names through the weight files, and `fit`
//! with several threads falling back to one for batch statistics.

mod common;
use common::{
    assert_close, check_gradients, check_model_case, check_training_gradients, dims, floats, golden,
};
use kiln::{FitOptions, Gradients, Loss, Model, Pass, Sgd, Tensor, Trainable};
use serde_json::Value;

kiln::model! {
    BnRank2 = Sequential([Input(shape = (6,)), BatchNormalization()]);
    BnRank4ChannelsLast = Sequential([Input(shape = (3, 4, 5)), BatchNormalization()]);
    BnRank4Axis1 = Sequential([Input(shape = (3, 4, 5)), BatchNormalization(axis = 1)]);
    BnRank4AxisMinus2 = Sequential([
        Input(shape = (3, 4, 5)),
        BatchNormalization(axis = -2, epsilon = 0.01),
    ]);
    BnNoCenterNoScale = Sequential([
        Input(shape = (3, 4, 5)),
        BatchNormalization(axis = 2, center = False, scale = False),
    ]);
    BnScaleOnly = Sequential([Input(shape = (6,)), BatchNormalization(center = False)]);
    BnCenterOnly = Sequential([Input(shape = (6,)), BatchNormalization(scale = False)]);
    DenseBnDense = Sequential([
        Input(shape = (6,)),
        Dense(5),
        BatchNormalization(),
        Dense(2),
    ]);
    LnRank2 = Sequential([Input(shape = (6,)), LayerNormalization()]);
    LnRank4Last = Sequential([Input(shape = (3, 4, 5)), LayerNormalization()]);
    LnRank4Axis1 = Sequential([Input(shape = (3, 4, 5)), LayerNormalization(axis = 1)]);
    LnRank4AllAxes = Sequential([
        Input(shape = (3, 4, 5)),
        LayerNormalization(axis = [1, 2, 3]),
    ]);
    LnRank4MixedAxes = Sequential([
        Input(shape = (3, 4, 5)),
        LayerNormalization(axis = [1, -1], center = False),
    ]);
    LnNoCenterNoScale = Sequential([
        Input(shape = (5, 4)),
        LayerNormalization(center = False, scale = False, epsilon = 1e-5),
    ]);

    TrainBnDense = Sequential([
        Input(shape = (6,)),
        Dense(5),
        BatchNormalization(),
        Dense(3),
    ]);
    TrainBnImageAxis1 = Sequential([
        Input(shape = (3, 4, 5)),
        Dense(4),
        BatchNormalization(axis = 1, momentum = 0.8),
        Dense(2),
    ]);
    TrainBnNoCenterNoScale = Sequential([
        Input(shape = (4, 3)),
        Dense(5),
        BatchNormalization(center = False, scale = False),
        Dense(2),
    ]);
    TrainBnMasked = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        Dense(4),
        BatchNormalization(),
        Dense(2),
    ]);
    TrainLnDense = Sequential([
        Input(shape = (6,)),
        Dense(5),
        LayerNormalization(),
        Dense(3),
    ]);
    TrainLnSequenceAxis1 = Sequential([
        Input(shape = (4, 3)),
        Dense(5),
        LayerNormalization(axis = 1),
        Dense(2),
    ]);
    TrainLnSequenceAll = Sequential([
        Input(shape = (4, 3)),
        Dense(5),
        LayerNormalization(axis = [1, 2]),
        Dense(2),
    ]);
    TrainLnImageMixed = Sequential([
        Input(shape = (2, 3, 4)),
        Dense(3),
        LayerNormalization(axis = [-1, 1], scale = False),
        Dense(2),
    ]);

    /// The trained Keras model of tests/keras_import/normalization (tools/keras_export.py's
    /// declaration), its weights baked in: `conv1-BN/moving_mean` and the others found by
    /// name at compile time.
    #[weights = "tests/keras_import/normalization/weights.safetensors"]
    BakedKeras = Sequential([
        Input(shape = (6, 4), name = "input_layer"),
        Dense(8, name = "conv1"),
        BatchNormalization(momentum = 0.8, name = "conv1-BN"),
        Activation("relu", name = "activation"),
        LayerNormalization(axis = [1, 2], name = "ln-all"),
        Dense(5, name = "dense"),
        BatchNormalization(axis = 1, center = False, name = "batch_normalization"),
        LayerNormalization(epsilon = 1e-05, name = "layer_normalization"),
        Flatten(name = "flatten"),
        Dense(3, activation = "softmax", name = "dense_1"),
    ]);

    /// The training-step parity model, with a hyphenated layer name as Keras allows.
    Steps = Sequential([
        Input(shape = (5,)),
        Dense(4),
        BatchNormalization(momentum = 0.9, name = "conv1-BN"),
        Dense(3, activation = "softmax"),
    ]);
}

/// Outputs: float32 statistics over 3-60 values, summed in another order than XLA's (every
/// case also passes at 2e-6 relative; the margin is for other compilers' rounding).
const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-6;
/// Gradients through the batch statistics: sums of terms of order 1 that cancel, so the
/// absolute floor matters for entries near 0.
const GRAD_RTOL: f32 = 1e-5;
const GRAD_ATOL: f32 = 1e-6;

fn file() -> Value {
    golden("normalization")
}

/// The case called `name` in the golden file's `group` list.
fn group(file: &Value, group: &str, name: &str) -> Value {
    file[group]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| {
            panic!("golden case {group}/{name} missing (regenerate with tools/keras_oracle.py normalization)")
        })
}

/// Keras's trainability of each weight and its trainable count against kiln's.
fn check_trainability<M: Trainable>(case: &Value) {
    let name = case["name"].as_str().unwrap_or("case");
    let keras: Vec<bool> = case["trainable"]
        .as_array()
        .expect("trainable")
        .iter()
        .map(|v| v.as_bool().expect("a bool"))
        .collect();
    let kiln: Vec<bool> = M::UPDATES.iter().map(|u| u.is_trainable()).collect();
    assert_eq!(kiln, keras, "{name}: trainable weights");
    assert_eq!(
        M::TRAINABLE_PARAM_COUNT as u64,
        case["trainable_param_count"].as_u64().expect("count"),
        "{name}: trainable params"
    );
}

fn inference<M: Trainable>(name: &str) {
    let case = group(&file(), "inference", name);
    check_model_case::<M>(&case, RTOL, ATOL);
    check_trainability::<M>(&case);
}

#[test]
fn batch_normalization_inference_matches_keras() {
    inference::<BnRank2>("bn_rank2");
    inference::<BnRank4ChannelsLast>("bn_rank4_channels_last");
    inference::<BnRank4Axis1>("bn_rank4_axis1");
    inference::<BnRank4AxisMinus2>("bn_rank4_axis_minus2");
    inference::<BnNoCenterNoScale>("bn_no_center_no_scale");
    inference::<BnScaleOnly>("bn_scale_only");
    inference::<BnCenterOnly>("bn_center_only");
    inference::<DenseBnDense>("dense_bn_dense");
}

#[test]
fn layer_normalization_matches_keras() {
    inference::<LnRank2>("ln_rank2");
    inference::<LnRank4Last>("ln_rank4_last");
    inference::<LnRank4Axis1>("ln_rank4_axis1");
    inference::<LnRank4AllAxes>("ln_rank4_all_axes");
    inference::<LnRank4MixedAxes>("ln_rank4_mixed_axes");
    inference::<LnNoCenterNoScale>("ln_no_center_no_scale");
}

/// `M` with the case's weights.
fn load<M: Model>(case: &Value) -> M {
    let mut model = M::new(0);
    for (index, name) in M::WEIGHT_NAMES.iter().enumerate() {
        let spec = &case["weights"][*name];
        assert_eq!(
            M::WEIGHT_SHAPES[index],
            dims(&spec["shape"]).as_slice(),
            "{name}"
        );
        model
            .set_weight(name, &floats(&spec["values"]))
            .unwrap_or_else(|e| panic!("set_weight({name}): {e}"));
    }
    model
}

/// The training pass of a `training` case: outputs, gradients of
/// `Σ (y - t)² / (2 · batch)`, and the moving statistics after the update.
fn training<M: Trainable>(name: &str) {
    let case = group(&file(), "training", name);
    check_trainability::<M>(&case);
    let model: M = load(&case);
    let (x, t) = (floats(&case["x"]), floats(&case["t"]));
    let n = case["batch"].as_u64().expect("batch") as f32;
    let mut y = Vec::new();
    let mut head = |out: &[f32], dy: &mut [f32]| {
        y.extend_from_slice(out);
        for ((d, a), b) in dy.iter_mut().zip(out).zip(&t) {
            *d = (a - b) / n;
        }
        false
    };
    let mut grads = Gradients::for_model::<M>();
    let mut pass = Pass {
        training: true,
        ..Pass::default()
    };
    model.__train_batch(&x, &mut pass, &mut head, &mut grads);
    assert_close(
        &format!("{name}: training outputs"),
        &y,
        &floats(&case["y"]),
        RTOL,
        ATOL,
    );
    for (index, weight) in M::WEIGHT_NAMES.iter().enumerate() {
        let update = M::UPDATES[index];
        if update.is_trainable() {
            assert_close(
                &format!("{name}: d loss / d {weight}"),
                grads.get(index),
                &floats(&case["grads"][*weight]),
                GRAD_RTOL,
                GRAD_ATOL,
            );
        } else {
            let mut moving = model.get_weight(weight).expect("get_weight");
            update.apply(&mut moving, grads.get(index));
            assert_close(
                &format!("{name}: {weight} after one update"),
                &moving,
                &floats(&case["moving_after"][*weight]),
                RTOL,
                1e-6,
            );
        }
    }
}

#[test]
fn batch_normalization_training_pass_matches_jax_grad() {
    training::<TrainBnDense>("bn_dense");
    training::<TrainBnImageAxis1>("bn_image_axis1");
    training::<TrainBnNoCenterNoScale>("bn_no_center_no_scale");
    training::<TrainBnMasked>("bn_masked");
}

#[test]
fn layer_normalization_gradients_match_jax_grad() {
    training::<TrainLnDense>("ln_dense");
    training::<TrainLnSequenceAxis1>("ln_sequence_axis1");
    training::<TrainLnSequenceAll>("ln_sequence_all");
    training::<TrainLnImageMixed>("ln_image_mixed");
}

#[test]
fn sgd_steps_match_keras_train_on_batch_moving_statistics_included() {
    let file = file();
    let case = file["steps"]
        .as_array()
        .and_then(|s| s.first())
        .expect("steps case");
    assert_eq!(
        Steps::WEIGHT_NAMES,
        [
            "dense/kernel",
            "dense/bias",
            "conv1-BN/gamma",
            "conv1-BN/beta",
            "conv1-BN/moving_mean",
            "conv1-BN/moving_variance",
            "dense_1/kernel",
            "dense_1/bias",
        ]
    );
    check_trainability::<Steps>(case);
    let mut trainer = load::<Steps>(case).compile(
        Sgd {
            learning_rate: 0.1,
            ..Sgd::default()
        },
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    let steps = case["steps"].as_u64().expect("steps") as usize;
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let (x_len, y_len) = (x.len() / steps, y.len() / steps);
    for step in 0..steps {
        let logs = trainer
            .train_on_batch(
                &x[step * x_len..(step + 1) * x_len],
                &y[step * y_len..(step + 1) * y_len],
            )
            .expect("train_on_batch");
        assert_close(
            &format!("step {step}: loss"),
            &[logs.loss],
            &[case["losses"][step].as_f64().expect("loss") as f32],
            RTOL,
            ATOL,
        );
        for weight in Steps::WEIGHT_NAMES {
            assert_close(
                &format!("step {step}: {weight}"),
                &trainer.model().get_weight(weight).expect("get_weight"),
                &floats(&case["after"][step][*weight]),
                GRAD_RTOL,
                GRAD_ATOL,
            );
        }
    }
}

#[test]
fn backward_passes_match_finite_differences() {
    // BatchNormalization in training mode: the loss of the training pass, whose batch
    // statistics depend on every input.
    check_training_gradients::<TrainBnDense>(1, 6, 6, 2e-3);
    check_training_gradients::<TrainBnImageAxis1>(2, 3, 6, 2e-3);
    check_training_gradients::<TrainBnNoCenterNoScale>(3, 4, 6, 2e-3);
    check_gradients::<TrainLnDense>(4, 5, 6, 2e-3);
    check_gradients::<TrainLnSequenceAxis1>(5, 4, 6, 2e-3);
    check_gradients::<TrainLnSequenceAll>(6, 4, 6, 2e-3);
    check_gradients::<TrainLnImageMixed>(7, 3, 6, 2e-3);
}

#[test]
fn summary_counts_trainable_and_non_trainable_params_as_keras() {
    let case = &file()["steps"][0];
    let total = case["param_count"].as_u64().expect("total");
    let trainable = case["trainable_param_count"].as_u64().expect("trainable");
    assert_eq!(
        (
            Steps::PARAM_COUNT as u64,
            Steps::TRAINABLE_PARAM_COUNT as u64
        ),
        (total, trainable)
    );
    assert_eq!(Steps::WEIGHT_BYTES, 4 * Steps::PARAM_COUNT);
    let summary = Steps::summary();
    let bytes = |n: u64| format!("{:.2} B", (n * 4) as f64);
    for line in [
        "│ conv1-BN (BatchNormalization)".to_string(),
        format!(" Total params: {total} ({})\n", bytes(total)),
        format!(" Trainable params: {trainable} ({})\n", bytes(trainable)),
        format!(
            " Non-trainable params: {} ({})\n",
            total - trainable,
            bytes(total - trainable)
        ),
    ] {
        assert!(summary.contains(&line), "{line:?} missing from\n{summary}");
    }
    // The BatchNormalization row counts all four of its weights, as Keras's does.
    let row = summary
        .lines()
        .find(|l| l.contains("conv1-BN"))
        .expect("the BatchNormalization row");
    assert!(row.ends_with(" 16 │"), "{row}");
}

#[test]
fn hyphenated_names_reach_every_weight_api() {
    let case = &file()["steps"][0];
    let model: Steps = load(case);
    let mean = model
        .get_weight("conv1-BN/moving_mean")
        .expect("moving mean");
    assert_eq!(
        mean,
        floats(&case["weights"]["conv1-BN/moving_mean"]["values"])
    );
    let bytes = model.weights_to_bytes();
    let mut copy = Steps::new(7);
    copy.load_weights_from_bytes(&bytes).expect("load");
    for weight in Steps::WEIGHT_NAMES {
        assert_eq!(
            copy.get_weight(weight),
            model.get_weight(weight),
            "{weight}"
        );
    }
    let path = std::env::temp_dir().join(format!("kiln-bn-{}.safetensors", std::process::id()));
    model.save_weights(&path).expect("save");
    let mut loaded = Steps::new(9);
    loaded.load_weights(&path).expect("load");
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        loaded.get_weight("conv1-BN/moving_variance"),
        model.get_weight("conv1-BN/moving_variance")
    );
}

#[test]
fn fit_with_threads_trains_batch_statistics_on_one_thread() {
    let case = &file()["steps"][0];
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let train = |threads: usize| {
        let mut trainer = load::<Steps>(case).compile(
            Sgd {
                learning_rate: 0.1,
                ..Sgd::default()
            },
            Loss::CategoricalCrossentropy { from_logits: false },
        );
        let options = FitOptions {
            epochs: 3,
            batch_size: 6,
            verbose: false,
            threads,
            ..FitOptions::default()
        };
        trainer.fit(&x, &y, &options).expect("fit");
        let model = trainer.into_model();
        Steps::WEIGHT_NAMES
            .iter()
            .map(|w| model.get_weight(w).expect("weight"))
            .collect::<Vec<_>>()
    };
    let one = train(1);
    assert_eq!(
        train(2),
        one,
        "two threads fall back to the one-thread steps"
    );
    // The moving statistics moved.
    let start = floats(&case["weights"]["conv1-BN/moving_variance"]["values"]);
    assert_ne!(one[5], start);
}

static BAKED: BakedKeras = BakedKeras::pretrained();

#[test]
fn baked_keras_weights_give_keras_predictions() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keras_import/normalization/cases.json"
    );
    let case: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("cases.json")).expect("JSON");
    assert!(BAKED.get_weight("conv1-BN/moving_variance").is_ok());
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let predicted = BAKED.predict_batch(&x).expect("predict_batch");
    assert_close("baked predict_batch", &predicted, &y, RTOL, ATOL);
    for (xs, ys) in x
        .chunks(BakedKeras::INPUT_LEN)
        .zip(y.chunks(BakedKeras::OUTPUT_LEN))
    {
        let one = BAKED.predict(&<BakedKeras as Model>::Input::from_values(xs));
        assert_close("baked predict", one.as_slice(), ys, RTOL, ATOL);
    }
    // Trained moving statistics, not the initial zeros and ones.
    let variance = BAKED
        .get_weight("conv1-BN/moving_variance")
        .expect("weight");
    assert!(variance.iter().all(|v| *v != 1.0), "{variance:?}");
}
