//! Shared by the integration tests: reading golden vectors that `tools/keras_oracle.py`
//! wrote from real Keras, and comparing floats with a tolerance that names what differed.
#![allow(dead_code)]

use serde_json::Value;

/// `tests/golden/<name>.json`, parsed.
pub fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e} (regenerate with tools/keras_oracle.py)")
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid JSON: {e}"))
}

/// A JSON list of numbers (or "nan"/"inf"/"-inf") as f32s.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list of numbers, found {v}"))
        .iter()
        .map(|x| match x {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN) as f32,
            Value::String(s) if s == "nan" => f32::NAN,
            Value::String(s) if s == "inf" => f32::INFINITY,
            Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
            other => panic!("expected a number, found {other}"),
        })
        .collect()
}

/// A JSON list of non-negative integers as usizes.
pub fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list of integers, found {v}"))
        .iter()
        .map(|x| {
            x.as_u64()
                .unwrap_or_else(|| panic!("expected an integer, found {x}")) as usize
        })
        .collect()
}

/// Asserts `|actual - expected| <= atol + rtol * |expected|` elementwise; NaN must match NaN
/// and infinities must match exactly. The panic names `what` and the first bad index.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], rtol: f32, atol: f32) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: length {} but Keras has {}",
        actual.len(),
        expected.len()
    );
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= atol + rtol * e.abs()
        };
        assert!(
            ok,
            "{what}: index {i}: kiln {a:e}, Keras {e:e} (rtol {rtol:e}, atol {atol:e})"
        );
    }
}

/// The conformance check every layer's parity test uses on a golden model case written by
/// `tools/oracle/*.py` (keys: `input_shape`, `output_shape`, optional `param_count`,
/// `weight_names`, `weights` {name: {shape, values}}, `batch`, `x`, `y`): shapes and
/// weight names agree with Keras, Keras's weights load, and `predict_batch`,
/// `predict_slice` and the typed `predict` all reproduce Keras's outputs, and
/// `predict_into` (tensors in scratch memory) does too.
pub fn check_model_case<M: kiln::Model>(case: &Value, rtol: f32, atol: f32) {
    use kiln::Tensor;
    let name = case["name"].as_str().unwrap_or("case");
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
    if let Some(count) = case.get("param_count").and_then(Value::as_u64) {
        assert_eq!(M::PARAM_COUNT as u64, count, "{name}: param count");
    }
    if let Some(names) = case.get("weight_names").and_then(Value::as_array) {
        let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
        assert_eq!(M::WEIGHT_NAMES, names.as_slice(), "{name}: weight names");
    }
    let mut model = M::new(0);
    if let Some(weights) = case.get("weights").and_then(Value::as_object) {
        for (weight, spec) in weights {
            let index = M::WEIGHT_NAMES.iter().position(|n| n == weight);
            let index = index.unwrap_or_else(|| panic!("{name}: kiln has no weight {weight}"));
            assert_eq!(
                M::WEIGHT_SHAPES[index],
                dims(&spec["shape"]).as_slice(),
                "{name}: shape of {weight}"
            );
            model
                .set_weight(weight, &floats(&spec["values"]))
                .unwrap_or_else(|e| panic!("{name}: set_weight({weight}): {e}"));
        }
    }
    let x = floats(&case["x"]);
    let y = floats(&case["y"]);
    let batch = model
        .predict_batch(&x)
        .unwrap_or_else(|e| panic!("{name}: predict_batch: {e}"));
    assert_close(&format!("{name}: predict_batch"), &batch, &y, rtol, atol);
    let (n_in, n_out) = (M::INPUT_LEN, M::OUTPUT_LEN);
    for (i, (xs, ys)) in x.chunks(n_in).zip(y.chunks(n_out)).enumerate() {
        let one = model
            .predict_slice(xs)
            .unwrap_or_else(|e| panic!("{name}: predict_slice: {e}"));
        assert_close(
            &format!("{name}: predict_slice sample {i}"),
            &one,
            ys,
            rtol,
            atol,
        );
        let typed = model.predict(&M::Input::from_values(xs));
        assert_close(
            &format!("{name}: predict sample {i}"),
            typed.values(),
            ys,
            rtol,
            atol,
        );
        let (mut into, mut scratch) = (M::new_output(), M::new_scratch());
        model.predict_into(&M::Input::from_values(xs), &mut into, &mut scratch);
        assert_close(
            &format!("{name}: predict_into sample {i}"),
            into.values(),
            ys,
            rtol,
            atol,
        );
    }
}

/// The golden case called `name` in `tests/golden/<file>.json`'s `cases` list.
pub fn case(file: &Value, name: &str) -> Value {
    file["cases"]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| {
            panic!("golden case {name} missing (regenerate with tools/keras_oracle.py)")
        })
}

/// The shared gradient check (Keras's `run_layer_test` idea for backward passes): builds
/// `M` from `seed`, draws inputs and targets, and compares the generated backward pass's
/// weight gradients of `loss = Σ (y - t)² / (2 · samples)` with central finite differences
/// (in f64 around the f32 forward pass). A layer without weights is checked through the
/// gradients of the weights before it, which flow through its backward pass.
///
/// Checks up to `per_weight` entries of every trainable weight (a non-trainable one's slot
/// holds a batch statistic, not a gradient); fails with the weight name and index.
pub fn check_gradients<M: kiln::Trainable>(
    seed: u64,
    samples: usize,
    per_weight: usize,
    tolerance: f64,
) {
    check_gradients_in::<M>(false, seed, samples, per_weight, tolerance);
}

/// [`check_gradients`] with the finite differences taken in training mode (the loss of the
/// training pass's output, as `__train_batch` computes it), for layers that compute in
/// training what they do not in `predict` (BatchNormalization's batch statistics).
pub fn check_training_gradients<M: kiln::Trainable>(
    seed: u64,
    samples: usize,
    per_weight: usize,
    tolerance: f64,
) {
    check_gradients_in::<M>(true, seed, samples, per_weight, tolerance);
}

fn check_gradients_in<M: kiln::Trainable>(
    training: bool,
    seed: u64,
    samples: usize,
    per_weight: usize,
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
    let loss = |model: &M| -> f64 {
        let y = if training {
            let mut y = Vec::new();
            let mut scratch = kiln::Gradients::for_model::<M>();
            let mut keep = |out: &[f32], dy: &mut [f32]| {
                y.extend_from_slice(out);
                dy.fill(0.0);
                false
            };
            model.__train_batch(&x, &mut kiln::Pass::default(), &mut keep, &mut scratch);
            y
        } else {
            model.predict_batch(&x).expect("predict_batch")
        };
        y.iter()
            .zip(&t)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / (2.0 * samples as f64)
    };
    let mut grads = kiln::Gradients::for_model::<M>();
    let mut head = |y: &[f32], dy: &mut [f32]| {
        for ((d, a), b) in dy.iter_mut().zip(y).zip(&t) {
            *d = (a - b) / samples as f32;
        }
        false
    };
    let mut pass = kiln::Pass::default();
    model.__train_batch(&x, &mut pass, &mut head, &mut grads);
    let eps = 1e-2f32;
    for (index, name) in M::WEIGHT_NAMES.iter().enumerate() {
        if !M::UPDATES[index].is_trainable() {
            continue;
        }
        let values = model.get_weight(name).expect("get_weight");
        let step = (values.len() / per_weight.max(1)).max(1);
        for i in (0..values.len()).step_by(step) {
            let mut w = values.clone();
            w[i] = values[i] + eps;
            model.set_weight(name, &w).expect("set_weight");
            let plus = loss(&model);
            w[i] = values[i] - eps;
            model.set_weight(name, &w).expect("set_weight");
            let minus = loss(&model);
            model.set_weight(name, &values).expect("set_weight");
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

/// Why a slice API must refuse an input: the first bad value and its index in the slice.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// NaN or infinite: `Error::NonFiniteInput`.
    NonFinite(usize, f32),
    /// Not a whole number in `0..input_dim`, for a model taking ids: `Error::InvalidId`.
    Id(usize, f32),
}

/// What the slice APIs must answer for `xs` (one sample or a whole batch): `None` to accept
/// it, or the refusal naming the first bad index: a non-finite value first, then, for a
/// model taking ids (`input_dim`), a value that is not a whole number in `0..input_dim`.
fn expected_refusal(xs: &[f32], input_dim: Option<usize>) -> Option<Refusal> {
    if let Some((i, &v)) = xs.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Some(Refusal::NonFinite(i, v));
    }
    let n = input_dim? as f32;
    xs.iter()
        .enumerate()
        .find(|(_, &v)| v < 0.0 || v >= n || v.fract() != 0.0)
        .map(|(i, &v)| Refusal::Id(i, v))
}

/// Asserts that a slice API call refused its input exactly as `refusal` says.
fn assert_refused(what: &str, result: Result<Vec<f32>, kiln::Error>, refusal: Refusal) {
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    let ok = match (&result, refusal) {
        (Err(kiln::Error::NonFiniteInput { index, value }), Refusal::NonFinite(i, v)) => {
            *index == i && same(*value, v)
        }
        (Err(kiln::Error::InvalidId { index, value, .. }), Refusal::Id(i, v)) => {
            *index == i && same(*value, v)
        }
        _ => false,
    };
    assert!(
        ok,
        "{what}: expected the refusal {refusal:?}, found {result:?}"
    );
}

/// The check of a golden case from `tools/oracle/non_finite.py` (the keys of
/// [`check_model_case`], plus `finite_sample` and, for models taking ids, `input_dim`),
/// whose samples hold +inf, -inf and NaN (or ids outside the table):
/// - the typed `predict` and `predict_into`, one sample at a time, equal Keras's outputs
///   (NaN where Keras has NaN, the same infinities, finite values within `rtol`/`atol`);
/// - `predict_slice` refuses each sample with a non-finite value (`NonFiniteInput` naming
///   the first one; an id outside the table: `InvalidId`) and accepts the others, equal to
///   Keras; `predict_batch` refuses the whole batch, naming the first bad index of the
///   whole slice, and accepts the acceptable samples, equal to Keras.
pub fn check_non_finite_case<M: kiln::Model>(case: &Value, rtol: f32, atol: f32) {
    use kiln::Tensor;
    let name = case["name"].as_str().unwrap_or("case");
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
        case["param_count"].as_u64().unwrap_or(u64::MAX),
        "{name}: param count"
    );
    let names: Vec<&str> = case["weight_names"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(M::WEIGHT_NAMES, names.as_slice(), "{name}: weight names");
    let mut model = M::new(0);
    if let Some(weights) = case.get("weights").and_then(Value::as_object) {
        for (weight, spec) in weights {
            let index = M::WEIGHT_NAMES.iter().position(|n| n == weight);
            let index = index.unwrap_or_else(|| panic!("{name}: kiln has no weight {weight}"));
            assert_eq!(
                M::WEIGHT_SHAPES[index],
                dims(&spec["shape"]).as_slice(),
                "{name}: shape of {weight}"
            );
            model
                .set_weight(weight, &floats(&spec["values"]))
                .unwrap_or_else(|e| panic!("{name}: set_weight({weight}): {e}"));
        }
    }
    let input_dim = case
        .get("input_dim")
        .and_then(Value::as_u64)
        .map(|d| d as usize);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let (n_in, n_out) = (M::INPUT_LEN, M::OUTPUT_LEN);
    assert_eq!(
        x.len() / n_in,
        y.len() / n_out,
        "{name}: samples in x and y"
    );
    let finite = case["finite_sample"].as_u64().expect("finite_sample") as usize;
    assert!(
        expected_refusal(&x[finite * n_in..][..n_in], input_dim).is_none(),
        "{name}: sample {finite} should be acceptable"
    );
    let mut accepted = (Vec::new(), Vec::new());
    for (i, (xs, ys)) in x.chunks(n_in).zip(y.chunks(n_out)).enumerate() {
        let typed = model.predict(&M::Input::from_values(xs));
        assert_close(
            &format!("{name}: predict sample {i}"),
            typed.values(),
            ys,
            rtol,
            atol,
        );
        let (mut into, mut scratch) = (M::new_output(), M::new_scratch());
        model.predict_into(&M::Input::from_values(xs), &mut into, &mut scratch);
        assert_close(
            &format!("{name}: predict_into sample {i}"),
            into.values(),
            ys,
            rtol,
            atol,
        );
        let what = format!("{name}: predict_slice sample {i}");
        match expected_refusal(xs, input_dim) {
            Some(refusal) => assert_refused(&what, model.predict_slice(xs), refusal),
            None => {
                let one = model
                    .predict_slice(xs)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_close(&what, &one, ys, rtol, atol);
                accepted.0.extend_from_slice(xs);
                accepted.1.extend_from_slice(ys);
            }
        }
    }
    let refusal = expected_refusal(&x, input_dim).unwrap_or_else(|| {
        panic!("{name}: the batch holds no non-finite value (or id outside the table)")
    });
    assert_refused(
        &format!("{name}: predict_batch"),
        model.predict_batch(&x),
        refusal,
    );
    let batch = model
        .predict_batch(&accepted.0)
        .unwrap_or_else(|e| panic!("{name}: predict_batch of the acceptable samples: {e}"));
    assert_close(
        &format!("{name}: predict_batch of the acceptable samples"),
        &batch,
        &accepted.1,
        rtol,
        atol,
    );
}

/// A fresh `M` (seed 0) holding the golden case's weights (`weights`: {name: {values}}).
pub fn load<M: kiln::Model>(case: &Value) -> M {
    let mut model = M::new(0);
    for (name, spec) in case["weights"].as_object().expect("weights") {
        model
            .set_weight(name, &floats(&spec["values"]))
            .unwrap_or_else(|e| panic!("set_weight({name}): {e}"));
    }
    model
}

/// Runs the generated backward pass (inference-mode pass, as Keras's `training=False`) on
/// the case's `x` with the loss `Σ (y - t)² / (2 · batch)` and compares every weight's
/// gradient with Keras's (`grads`, from `jax.grad`).
pub fn check_keras_gradients<M: kiln::Trainable>(case: &Value, rtol: f32, atol: f32) {
    let name = case["name"].as_str().unwrap_or("case");
    let model: M = load(case);
    let x = floats(&case["x"]);
    let t = floats(&case["t"]);
    let samples = x.len() / M::INPUT_LEN;
    let mut grads = kiln::Gradients::for_model::<M>();
    let mut head = |y: &[f32], dy: &mut [f32]| {
        for ((d, a), b) in dy.iter_mut().zip(y).zip(&t) {
            *d = (a - b) / samples as f32;
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
            rtol,
            atol,
        );
    }
}
