//! Keras models imported end to end: trained in Keras 3, saved as `.keras`, exported by
//! `tools/keras_export.py` to `model.rs` + `weights.safetensors`, and run here against
//! Keras's own predictions (tests/keras_import/<case>/, written by
//! tools/make_import_fixtures.py; no Python at test time).
//!
//! Each case checks that the exported declaration compiles, that its `WEIGHT_NAMES` are the
//! names Keras lists (its variable paths without the model names), that the weight file
//! loads, and that `predict_batch` and per-sample `predict_slice` reproduce Keras's outputs.

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

const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-5;

fn read_case(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e} (regenerate with tools/make_import_fixtures.py)")
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid JSON: {e}"))
}

/// Loads the exported weights into `M` and compares it with Keras on the stored inputs.
fn check<M: Model>(case: &Value, weights: &str) {
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
