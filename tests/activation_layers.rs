//! The activation layers (`LeakyReLU`, `PReLU`, `ELU`, `ThresholdedReLU`, `Softmax`,
//! `ReLU`) against real Keras 3 (golden data: tools/oracle/activation_layers.py): outputs
//! of `predict_slice` and `predict_batch`, PReLU's weight names, shapes and parameter
//! counts, and the masked softmax kernel against Keras's `Softmax()(x, mask = ...)`.

mod common;
use common::{assert_close, case, dims, floats, golden};
use kiln::Model;
use serde_json::Value;

kiln::model! {
    PreluSharedNone = Sequential([Input(shape = (4, 5, 3)), PReLU()]);
    PreluShared1 = Sequential([Input(shape = (4, 5, 3)), PReLU(shared_axes = [1])]);
    PreluShared12 = Sequential([Input(shape = (4, 5, 3)), PReLU(shared_axes = [1, 2])]);
    PreluRank1 = Sequential([Input(shape = (7,)), PReLU()]);
    DensePreluDense = Sequential([
        Input(shape = (6,)),
        Dense(8),
        PReLU(),
        Dense(3),
    ]);
    SoftmaxAxis1 = Sequential([Input(shape = (4, 5, 3)), Softmax(axis = 1)]);
    SoftmaxAxisMinus1 = Sequential([Input(shape = (4, 5, 3)), Softmax(axis = -1)]);
    SoftmaxAxisMinus2 = Sequential([Input(shape = (4, 5, 3)), Softmax(-2)]);
    SoftmaxRank1 = Sequential([Input(shape = (6,)), Softmax()]);
    ReluDefault = Sequential([Input(shape = (4, 5, 3)), ReLU()]);
    ReluMaxValue6 = Sequential([Input(shape = (4, 5, 3)), ReLU(max_value = 6)]);
    ReluNegativeSlope = Sequential([Input(shape = (4, 5, 3)), ReLU(negative_slope = 0.1)]);
    ReluThreshold = Sequential([Input(shape = (4, 5, 3)), ReLU(threshold = 0.5)]);
    ReluAllThree = Sequential([
        Input(shape = (4, 5, 3)),
        ReLU(max_value = 6, negative_slope = 0.1, threshold = 0.5),
    ]);
    LeakyReluDefault = Sequential([Input(shape = (4, 5, 3)), LeakyReLU()]);
    LeakyReluAlpha = Sequential([Input(shape = (4, 5, 3)), LeakyReLU(alpha = 0.1)]);
    EluDefault = Sequential([Input(shape = (4, 5, 3)), ELU()]);
    EluAlpha = Sequential([Input(shape = (4, 5, 3)), ELU(alpha = 0.5)]);
    ThresholdedReluDefault = Sequential([Input(shape = (4, 5, 3)), ThresholdedReLU()]);
    ThresholdedReluTheta = Sequential([Input(shape = (4, 5, 3)), ThresholdedReLU(theta = 0.5)]);
    PreluInitialized = Sequential([
        Input(shape = (2, 3)),
        PReLU(alpha_initializer = Constant(0.25), shared_axes = 1),
    ]);
}

const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-7;

/// Loads the case's Keras weights into `M`, checks its metadata against Keras's, and
/// compares `predict_slice` (sample by sample) and `predict_batch` with Keras's outputs.
fn check<M: Model>(name: &str) {
    let c = case(&golden("activation_layers"), name);
    assert_eq!(
        M::INPUT_SHAPE,
        dims(&c["input_shape"]),
        "{name}: input shape"
    );
    assert_eq!(
        M::OUTPUT_SHAPE,
        dims(&c["output_shape"]),
        "{name}: output shape"
    );
    let names: Vec<&str> = c["weight_names"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(M::WEIGHT_NAMES, names, "{name}: weight names");
    let shapes: Vec<Vec<usize>> = c["weight_shapes"]
        .as_array()
        .map(|a| a.iter().map(dims).collect())
        .unwrap_or_default();
    let kiln_shapes: Vec<Vec<usize>> = M::WEIGHT_SHAPES.iter().map(|s| s.to_vec()).collect();
    assert_eq!(kiln_shapes, shapes, "{name}: weight shapes");
    assert_eq!(
        M::PARAM_COUNT as u64,
        c["param_count"].as_u64().unwrap_or(u64::MAX),
        "{name}: params"
    );

    let mut model = M::new(7);
    for weight in &names {
        let values = floats(&c["weights"][*weight]["values"]);
        model
            .set_weight(weight, &values)
            .unwrap_or_else(|e| panic!("{name}: set_weight({weight}): {e}"));
        assert_eq!(
            model.get_weight(weight).ok(),
            Some(values),
            "{name}: {weight} round trip"
        );
    }

    let (x, y) = (floats(&c["x"]), floats(&c["y"]));
    let batch = c["batch"].as_u64().unwrap_or(0) as usize;
    assert_eq!(x.len(), batch * M::INPUT_LEN, "{name}: golden input length");
    for (i, (xs, ys)) in x
        .chunks(M::INPUT_LEN)
        .zip(y.chunks(M::OUTPUT_LEN))
        .enumerate()
    {
        let out = model
            .predict_slice(xs)
            .unwrap_or_else(|e| panic!("{name}: predict_slice: {e}"));
        assert_close(
            &format!("{name} predict_slice sample {i}"),
            &out,
            ys,
            RTOL,
            ATOL,
        );
    }
    let out = model
        .predict_batch(&x)
        .unwrap_or_else(|e| panic!("{name}: predict_batch: {e}"));
    assert_close(&format!("{name} predict_batch"), &out, &y, RTOL, ATOL);
}

#[test]
fn prelu_without_shared_axes_matches_keras() {
    check::<PreluSharedNone>("prelu_shared_none");
    check::<PreluRank1>("prelu_rank1");
}

#[test]
fn prelu_shares_alpha_along_axes_like_keras() {
    check::<PreluShared1>("prelu_shared_1");
    check::<PreluShared12>("prelu_shared_1_2");
}

#[test]
fn prelu_between_dense_layers_matches_keras() {
    check::<DensePreluDense>("dense_prelu_dense");
}

#[test]
fn prelu_alpha_starts_from_its_initializer() {
    // Keras's default `alpha_initializer` is "zeros"; `Constant(0.25)` fills 0.25, and a
    // shared first axis leaves Keras's shape (1, 3).
    assert_eq!(
        PreluSharedNone::new(3).get_weight("p_re_lu/alpha").ok(),
        Some(vec![0.0; 60])
    );
    assert_eq!(PreluInitialized::WEIGHT_SHAPES, &[&[1usize, 3][..]]);
    assert_eq!(
        PreluInitialized::new(3).get_weight("p_re_lu/alpha").ok(),
        Some(vec![0.25; 3])
    );
}

#[test]
fn softmax_on_any_axis_matches_keras() {
    check::<SoftmaxAxis1>("softmax_axis_1");
    check::<SoftmaxAxisMinus1>("softmax_axis_minus_1");
    check::<SoftmaxAxisMinus2>("softmax_axis_minus_2");
    check::<SoftmaxRank1>("softmax_rank1");
}

#[test]
fn relu_argument_combinations_match_keras() {
    check::<ReluDefault>("relu_default");
    check::<ReluMaxValue6>("relu_max_value_6");
    check::<ReluNegativeSlope>("relu_negative_slope");
    check::<ReluThreshold>("relu_threshold");
    check::<ReluAllThree>("relu_all_three");
}

#[test]
fn leaky_relu_matches_keras_with_either_argument_name() {
    check::<LeakyReluDefault>("leaky_relu_default");
    check::<LeakyReluAlpha>("leaky_relu_alpha");
}

#[test]
fn elu_matches_keras() {
    check::<EluDefault>("elu_default");
    check::<EluAlpha>("elu_alpha");
}

#[test]
fn thresholded_relu_matches_keras_2() {
    check::<ThresholdedReluDefault>("thresholded_relu_default");
    check::<ThresholdedReluTheta>("thresholded_relu_theta");
}

/// The masked kernel on Keras's `Softmax(axis)(x, mask = mask[..., None])`, for one sample
/// at a time and for the whole batch.
#[test]
fn masked_softmax_kernel_matches_keras() {
    let file = golden("activation_layers");
    let cases = file["masked_softmax"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(cases.len(), 4, "masked softmax cases");
    for c in &cases {
        let name = c["name"].as_str().unwrap_or("?");
        let shape = dims(&c["input_shape"]);
        let rank = shape.len() as i64;
        let keras_axis = c["axis"].as_i64().unwrap_or(0);
        let axis = if keras_axis < 0 {
            rank + keras_axis
        } else {
            keras_axis - 1
        } as usize;
        let mask: Vec<bool> = c["mask"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_bool() == Some(true)).collect())
            .unwrap_or_default();
        let (x, y) = (floats(&c["x"]), floats(&c["y"]));
        let batch = c["batch"].as_u64().unwrap_or(0) as usize;
        let per_sample: usize = shape.iter().product();
        let positions = per_sample / shape[shape.len() - 1];
        assert_eq!(mask.len(), batch * positions, "{name}: mask length");

        let mut all = x.clone();
        kiln::layers::softmax_along(&mut all, &shape, axis, Some(&mask));
        assert_close(&format!("{name} batch"), &all, &y, RTOL, ATOL);

        for s in 0..batch {
            let mut one = x[s * per_sample..(s + 1) * per_sample].to_vec();
            let m = &mask[s * positions..(s + 1) * positions];
            kiln::layers::softmax_along(&mut one, &shape, axis, Some(m));
            let expected = &y[s * per_sample..(s + 1) * per_sample];
            assert_close(&format!("{name} sample {s}"), &one, expected, RTOL, ATOL);
        }
        // Keras zeroes every masked value, including whole lines with nothing left.
        let masked_zero = (0..all.len()).all(|i| mask[i / shape[shape.len() - 1]] || all[i] == 0.0);
        assert!(masked_zero, "{name}: a masked position is not zero");
    }
}
