//! Shared by the integration tests: reading golden vectors that `tools/keras_oracle.py`
//! wrote from real Keras, and comparing floats with a tolerance that names what differed.
#![allow(dead_code)]

use serde_json::Value;

/// `tests/golden/<name>.json`, parsed.
pub fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (regenerate with tools/keras_oracle.py)"));
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
        .map(|x| x.as_u64().unwrap_or_else(|| panic!("expected an integer, found {x}")) as usize)
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
        assert!(ok, "{what}: index {i}: kiln {a:e}, Keras {e:e} (rtol {rtol:e}, atol {atol:e})");
    }
}
