//! Flatten, Reshape, Permute and RepeatVector against Keras 3: every model of
//! `tools/oracle/shape_layers.py` declared again with `kiln::model!`, loaded with Keras's
//! Dense weights, and compared sample by sample and as one batch.

mod common;

use common::{assert_close, dims, floats, golden};
use kiln::Model;
use serde_json::Value;

kiln::model! {
    ReshapeChain = Sequential([
        Input(shape = (12,)),
        Reshape((3, 4)),
        Reshape((6, 2)),
        Reshape((-1, 2, 2)),
    ]);
    ReshapeBetweenDense = Sequential([
        Input(shape = (6,)),
        Dense(12),
        Reshape((3, 4)),
        Dense(5, activation = "tanh"),
        Reshape((-1,)),
    ]);
    Permute2d = Sequential([
        Input(shape = (10, 64)),
        Permute((2, 1)),
    ]);
    Permute3d = Sequential([
        Input(shape = (2, 3, 4)),
        Permute((3, 1, 2)),
    ]);
    Permute4d = Sequential([
        Input(shape = (2, 3, 4, 5)),
        Permute((4, 2, 3, 1)),
    ]);
    FlattenRank1 = Sequential([
        Input(shape = (5,)),
        Flatten(),
        Dense(2),
    ]);
    FlattenRank2 = Sequential([
        Input(shape = (3, 4)),
        Flatten(),
    ]);
    FlattenRank3 = Sequential([
        Input(shape = (2, 3, 4)),
        Flatten(data_format = "channels_last"),
    ]);
    RepeatVectorDense = Sequential([
        Input(shape = (8,)),
        Dense(32),
        RepeatVector(3),
        Dense(5, activation = "relu"),
    ]);
    DenseReshapePermuteFlatten = Sequential([
        Input(shape = (6,)),
        Dense(12, activation = "relu"),
        Reshape((3, 4)),
        Permute((2, 1)),
        Dense(5, activation = "tanh"),
        Flatten(),
        Dense(3, activation = "softmax"),
    ]);
    FlattenDensePermuteRepeat = Sequential([
        Input(shape = (4, 5)),
        Flatten(),
        Dense(24),
        Reshape((2, 3, 4)),
        Permute((2, 3, 1)),
        Reshape((-1, 4)),
        Dense(2, activation = "sigmoid"),
        Flatten(),
        RepeatVector(2),
        Dense(3),
    ]);
}

const RTOL: f32 = 1e-5;
/// Dense sums round differently in XLA and nalgebra; values near zero need an absolute floor.
const ATOL: f32 = 1e-6;

fn case(name: &str) -> Value {
    let golden = golden("shape_layers");
    let cases = golden["cases"]
        .as_array()
        .expect("`cases` is a list")
        .clone();
    cases
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| {
            panic!("no golden case `{name}` (regenerate with tools/keras_oracle.py)")
        })
}

/// Shapes, layer names and weights must match Keras's model; then every sample through
/// `predict_slice` and the whole batch through `predict_batch` must give Keras's outputs.
fn check<M: Model>(name: &str) {
    let case = case(name);
    assert_eq!(
        M::INPUT_SHAPE,
        dims(&case["input_shape"]).as_slice(),
        "{name}: input shape"
    );
    assert_eq!(
        M::OUTPUT_SHAPE,
        dims(&case["output_shape"]).as_slice(),
        "{name}: output shape"
    );
    assert_eq!(
        M::PARAM_COUNT as u64,
        case["param_count"].as_u64().unwrap(),
        "{name}: params"
    );
    let layer_names: Vec<&str> = M::LAYERS.iter().map(|l| l.name).collect();
    let keras_names: Vec<&str> = case["layer_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(layer_names, keras_names, "{name}: layer names");
    for (layer, shape) in M::LAYERS
        .iter()
        .zip(case["layer_output_shapes"].as_array().unwrap())
    {
        assert_eq!(
            layer.output_shape,
            dims(shape).as_slice(),
            "{name}: `{}` output shape",
            layer.name
        );
    }

    let mut model = M::new(0);
    let weight_names: Vec<&str> = case["weight_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        M::WEIGHT_NAMES,
        weight_names.as_slice(),
        "{name}: weight names"
    );
    for weight in &weight_names {
        let values = floats(&case["weights"][*weight]["values"]);
        model
            .set_weight(weight, &values)
            .unwrap_or_else(|e| panic!("{name}: set_weight({weight}): {e}"));
    }

    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let batch = case["batch"].as_u64().unwrap() as usize;
    assert!(batch >= 3, "{name}: batches of at least 3 samples");
    assert_eq!(x.len(), batch * M::INPUT_LEN);
    assert_eq!(y.len(), batch * M::OUTPUT_LEN);
    for (i, (xs, ys)) in x
        .chunks(M::INPUT_LEN)
        .zip(y.chunks(M::OUTPUT_LEN))
        .enumerate()
    {
        let out = model.predict_slice(xs).unwrap();
        assert_close(
            &format!("{name}: predict_slice, sample {i}"),
            &out,
            ys,
            RTOL,
            ATOL,
        );
    }
    let out = model.predict_batch(&x).unwrap();
    assert_close(&format!("{name}: predict_batch"), &out, &y, RTOL, ATOL);
}

#[test]
fn reshape_chain_with_and_without_inferred_dimension() {
    check::<ReshapeChain>("reshape_chain");
    assert_eq!(ReshapeChain::OUTPUT_SHAPE, &[3, 2, 2]);
}

#[test]
fn reshape_between_dense_layers() {
    check::<ReshapeBetweenDense>("reshape_between_dense");
}

#[test]
fn permute_transposes_rank2() {
    check::<Permute2d>("permute_2d");
    assert_eq!(Permute2d::OUTPUT_SHAPE, &[64, 10]);
}

#[test]
fn permute_rank3_and_rank4() {
    check::<Permute3d>("permute_3d");
    assert_eq!(Permute3d::OUTPUT_SHAPE, &[4, 2, 3]);
    check::<Permute4d>("permute_4d");
}

#[test]
fn flatten_every_rank() {
    check::<FlattenRank1>("flatten_rank1");
    check::<FlattenRank2>("flatten_rank2");
    check::<FlattenRank3>("flatten_rank3");
    assert_eq!(FlattenRank3::OUTPUT_SHAPE, &[24]);
}

#[test]
fn repeat_vector_after_dense() {
    check::<RepeatVectorDense>("repeat_vector_dense");
    assert_eq!(RepeatVectorDense::OUTPUT_SHAPE, &[3, 5]);
}

#[test]
fn chains_of_shape_layers_and_dense() {
    check::<DenseReshapePermuteFlatten>("dense_reshape_permute_flatten");
    check::<FlattenDensePermuteRepeat>("flatten_dense_permute_repeat");
}

#[test]
fn typed_predict_uses_keras_shapes() {
    // (2, 3) holds [[0, 1, 2], [3, 4, 5]]; Permute((2, 1)) on it gives its transpose.
    kiln::model! {
        Transpose = Sequential([Input(shape = (2, 3)), Permute((2, 1))]);
    }
    let x = kiln::Sample::<3, 2>::from_column_slice(&[0., 1., 2., 3., 4., 5.]);
    let y: kiln::Sample<2, 3> = Transpose::new(0).predict(&x);
    assert_eq!(y.as_slice(), &[0., 3., 1., 4., 2., 5.]);
}
