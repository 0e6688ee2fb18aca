//! Keras models imported end to end: trained in Keras 3, saved as `.keras`, exported by
//! `tools/keras_export.py` to `model.rs` + `weights.safetensors`, and run here against
//! Keras's own predictions (tests/keras_import/<case>/, written by
//! tools/make_import_fixtures.py; no Python at test time).
//!
//! Each case checks that the exported declaration compiles, that its `WEIGHT_NAMES` are the
//! names Keras lists (its variable paths without the model names), that the weight file
//! loads, and that `predict_batch` and per-sample `predict_slice` reproduce Keras's outputs;
//! the stateful case, that `predict_stateful` reproduces Keras's consecutive calls.

mod common;

use common::{assert_close, dims, floats};
use kiln::Model;
use serde_json::Value;

mod mlp {
    include!("keras_import/mlp/model.rs");
}

mod activations {
    include!("keras_import/activations/model.rs");
}

mod masked {
    include!("keras_import/masked/model.rs");
}

mod normalization {
    include!("keras_import/normalization/model.rs");
}

mod sequence {
    include!("keras_import/sequence/model.rs");
}

mod streaming {
    include!("keras_import/streaming/model.rs");
}

const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-5;

fn read_case(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e} (regenerate with tools/make_import_fixtures.py)")
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid JSON: {e}"))
}

/// `M`'s weight names and shapes are Keras's (its variable paths without the model names).
fn check_weights<M: Model>(case: &Value) {
    let name = case["name"].as_str().expect("case name");
    let keras_names: Vec<&str> = case["weight_names"]
        .as_array()
        .expect("weight_names")
        .iter()
        .map(|n| n.as_str().expect("a weight name"))
        .collect();
    assert_eq!(
        M::WEIGHT_NAMES,
        keras_names.as_slice(),
        "{name}: weight names"
    );
    let shapes: Vec<Vec<usize>> = case["weight_shapes"]
        .as_array()
        .expect("weight_shapes")
        .iter()
        .map(dims)
        .collect();
    let kiln_shapes: Vec<Vec<usize>> = M::WEIGHT_SHAPES.iter().map(|s| s.to_vec()).collect();
    assert_eq!(kiln_shapes, shapes, "{name}: weight shapes");
}

/// Loads the exported weights into `M` and compares it with Keras on the stored inputs.
fn check<M: Model>(case: &Value, weights: &str) {
    let name = case["name"].as_str().expect("case name");
    check_weights::<M>(case);
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

    let mut model = M::new(0);
    model
        .load_weights(weights)
        .unwrap_or_else(|e| panic!("{name}: load_weights({weights}): {e}"));

    let x = floats(&case["x"]);
    let y = floats(&case["y"]);
    let batch = case["batch"].as_u64().expect("batch") as usize;
    assert_eq!(x.len(), batch * M::INPUT_LEN, "{name}: inputs");
    let predicted = model
        .predict_batch(&x)
        .unwrap_or_else(|e| panic!("{name}: predict_batch: {e}"));
    assert_close(
        &format!("{name}: predict_batch"),
        &predicted,
        &y,
        RTOL,
        ATOL,
    );
    for (i, (xs, ys)) in x
        .chunks(M::INPUT_LEN)
        .zip(y.chunks(M::OUTPUT_LEN))
        .enumerate()
    {
        let one = model
            .predict_slice(xs)
            .unwrap_or_else(|e| panic!("{name}: predict_slice: {e}"));
        assert_close(
            &format!("{name}: predict_slice sample {i}"),
            &one,
            ys,
            RTOL,
            ATOL,
        );
    }
}

/// One test per fixture folder: the paths are built with `concat!` so they do not depend on
/// the directory `cargo test` runs in.
macro_rules! import_case {
    ($test:ident, $case:literal, $model:ty) => {
        #[test]
        fn $test() {
            let case = read_case(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/keras_import/",
                $case,
                "/cases.json"
            ));
            assert_eq!(case["name"], $case);
            check::<$model>(
                &case,
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/keras_import/",
                    $case,
                    "/weights.safetensors"
                ),
            );
        }
    };
}

import_case!(mlp_matches_keras, "mlp", mlp::Mlp);
import_case!(
    activation_layers_match_keras,
    "activations",
    activations::Activations
);
import_case!(
    masked_functional_chain_matches_keras,
    "masked",
    masked::Masked
);
import_case!(
    normalization_layers_match_keras,
    "normalization",
    normalization::Normalization
);

import_case!(
    sequence_classifier_matches_keras,
    "sequence",
    sequence::SequenceClassifier
);

/// The sequence case's inputs are ids with zero-padded tails of every length, one row all
/// padding, so `mask_zero` masks through `Bidirectional` and `GRU`.
#[test]
fn sequence_inputs_hold_padded_tails() {
    let case = read_case(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keras_import/sequence/cases.json"
    ));
    let x = floats(&case["x"]);
    let mut lengths: Vec<usize> = x
        .chunks(7)
        .map(|row| {
            let n = row.iter().take_while(|v| **v != 0.0).count();
            assert!(row[n..].iter().all(|v| *v == 0.0), "padding inside {row:?}");
            n
        })
        .collect();
    lengths.sort_unstable();
    assert_eq!(lengths, (0..8).collect::<Vec<_>>());
}

/// The stateful model (`Input(batch_shape = (2, None, 3))`, `LSTM(stateful = True)`):
/// `predict_stateful` over Keras's consecutive `model(x)` calls, the states reset where
/// Keras ran `reset_state()`; and each sample's chunks between resets, as one sequence
/// through `predict_sequence`, give the same rows.
#[test]
fn stateful_lstm_matches_keras_calls() {
    use kiln::Reset;
    use streaming::StatefulLstm;

    let case = read_case(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keras_import/streaming/cases.json"
    ));
    assert_eq!(case["name"], "streaming");
    check_weights::<StatefulLstm>(&case);
    let mut model = StatefulLstm::new(0);
    let weights = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keras_import/streaming/weights.safetensors"
    );
    model
        .load_weights(weights)
        .unwrap_or_else(|e| panic!("load_weights({weights}): {e}"));
    let batch = case["batch_size"].as_u64().expect("batch_size") as usize;
    let features = case["features"].as_u64().expect("features") as usize;
    let calls = case["calls"].as_array().expect("calls");
    assert!(calls.iter().any(|c| c["reset_before"] == true));

    // Each sample's inputs and Keras's outputs since the last reset.
    let mut rows = vec![(Vec::new(), Vec::new()); batch];
    let whole_sequences = |rows: &mut Vec<(Vec<f32>, Vec<f32>)>, segment: usize| {
        for (b, (xs, ys)) in rows.iter_mut().enumerate() {
            let got = model
                .predict_sequence(xs)
                .unwrap_or_else(|e| panic!("predict_sequence: {e}"));
            let what = format!("segment {segment} sample {b}: predict_sequence");
            assert_close(&what, &got, ys, RTOL, ATOL);
            xs.clear();
            ys.clear();
        }
    };
    let mut states = model.new_states();
    let mut segment = 0;
    for (n, call) in calls.iter().enumerate() {
        if call["reset_before"] == true {
            whole_sequences(&mut rows, segment);
            segment += 1;
            states.reset();
        }
        let x = floats(&call["x"]);
        let y = floats(&call["y"]);
        let timesteps = call["timesteps"].as_u64().expect("timesteps") as usize;
        assert_eq!(x.len(), batch * timesteps * features, "call {n}: inputs");
        let got = model
            .predict_stateful(&mut states, &x)
            .unwrap_or_else(|e| panic!("call {n}: predict_stateful: {e}"));
        assert_close(&format!("call {n}: predict_stateful"), &got, &y, RTOL, ATOL);
        let out = y.len() / batch;
        for (b, (xs, ys)) in rows.iter_mut().enumerate() {
            xs.extend_from_slice(&x[b * timesteps * features..][..timesteps * features]);
            ys.extend_from_slice(&y[b * out..][..out]);
        }
    }
    whole_sequences(&mut rows, segment);
}

/// The masked case's inputs really hold whole timesteps equal to the mask value (-1), so
/// the Masking path is exercised (not only unmasked values).
#[test]
fn masked_inputs_hold_masked_timesteps() {
    let case = read_case(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keras_import/masked/cases.json"
    ));
    let x = floats(&case["x"]);
    let masked = x
        .chunks(4)
        .filter(|step| step.iter().all(|v| *v == -1.0))
        .count();
    assert!(masked >= 8, "only {masked} masked timesteps");
}
