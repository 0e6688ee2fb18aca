//! What the `weight_file` fuzz target checks, shared with its seed and triage helpers.
//!
//! [`check`] loads arbitrary bytes into a fresh [`Net`] with `load_weights_from_bytes` and
//! panics (a crash, for the fuzzer) when the result breaks kiln's promise:
//!
//! - after an `Err`, `weights_to_bytes()` is byte-for-byte what it was before the call;
//! - after an `Ok`, every weight is finite and equal, bit for bit, to the file's tensor as
//!   an independent decoder ([`reference_decode`]) reads it, and the loaded model's own
//!   bytes load back into another model;
//! - a file that the independent decoder accepts is never refused.
//!
//! A panic inside `load_weights_from_bytes` itself is a crash too.

use kiln::{Error, Model};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

kiln::model! {
    /// Four weights of three shapes: Dense kernel and bias, PReLU alpha, a bias-free kernel.
    pub Net = Sequential([
        Input(shape = (4,)),
        Dense(5, activation = "tanh"),
        PReLU(),
        Dense(2, use_bias = False),
    ]);
}

/// The seed every checked model starts from (any fixed seed would do: the fuzzer wants
/// the same starting model for the same input).
pub const START_SEED: u64 = 7;

/// Loads `bytes` into a fresh `Net` and panics if kiln's promise is broken (see the crate
/// docs). Returns the load's result for triage.
pub fn check(bytes: &[u8]) -> Result<(), Error> {
    let mut model = Net::new(START_SEED);
    let before = model.weights_to_bytes();
    let result = model.load_weights_from_bytes(bytes);
    let reference = reference_decode(bytes);
    match &result {
        Err(error) => {
            assert!(
                model.weights_to_bytes() == before,
                "the model changed after a failed load ({error:?})"
            );
            if let Some(weights) = &reference {
                panic!(
                    "a file the reference accepts was refused: {error:?}; reference: {weights:?}"
                );
            }
        }
        Ok(()) => {
            let Some(weights) = reference else {
                panic!("a file the reference refuses was loaded");
            };
            for (name, expected) in Net::WEIGHT_NAMES.iter().zip(&weights) {
                let got = model.get_weight(name).expect("a declared weight name");
                assert!(
                    got.iter().all(|v| v.is_finite()),
                    "{name} holds a non-finite value after a successful load: {got:?}"
                );
                let got_bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                let expected_bits: Vec<u32> = expected.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got_bits, expected_bits, "{name} differs from the file");
            }
            let mut again = Net::new(START_SEED + 1);
            again
                .load_weights_from_bytes(&model.weights_to_bytes())
                .expect("a loaded model's own bytes load");
            assert!(again.weights_to_bytes() == model.weights_to_bytes());
        }
    }
    result
}

/// The weights `bytes` should load as, decoded without kiln: `Some` with one `Vec<f32>` per
/// name of `Net::WEIGHT_NAMES` (in that order) when the file is a safetensors file that
/// holds exactly those tensors, in their shapes, in F32/F64/F16/BF16, with every value
/// finite as an f32; `None` otherwise.
pub fn reference_decode(bytes: &[u8]) -> Option<Vec<Vec<f32>>> {
    let file = SafeTensors::deserialize(bytes).ok()?;
    let mut names = file.names();
    names.sort_unstable();
    let mut expected: Vec<&str> = Net::WEIGHT_NAMES.to_vec();
    expected.sort_unstable();
    if names != expected {
        return None;
    }
    let mut weights = Vec::new();
    for (name, shape) in Net::WEIGHT_NAMES.iter().zip(Net::WEIGHT_SHAPES) {
        let tensor = file.tensor(name).ok()?;
        if tensor.shape() != *shape {
            return None;
        }
        let values = decode(&tensor)?;
        if values.len() != shape.iter().product::<usize>() || !values.iter().all(|v| v.is_finite())
        {
            return None;
        }
        weights.push(values);
    }
    Some(weights)
}

/// One tensor's values as f32, or `None` for a dtype kiln does not read.
fn decode(tensor: &TensorView) -> Option<Vec<f32>> {
    let data = tensor.data();
    let values = match tensor.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    };
    Some(values)
}

/// A short name for what a load did: `ok`, or the error's variant, with the safetensors
/// error's variant for `WeightFile` (`WeightFile-HeaderTooSmall`...). Triage groups inputs
/// by it.
pub fn outcome_kind(result: &Result<(), Error>) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(Error::WeightFile { reason }) => format!("WeightFile-{}", safetensors_error(reason)),
        Err(other) => {
            let debug = format!("{other:?}");
            debug
                .split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or("unknown")
                .to_string()
        }
    }
}

/// The `SafeTensorError` variant whose message `reason` is (safetensors 0.8's `Display`),
/// or the message's first words when it is none of them.
fn safetensors_error(reason: &str) -> String {
    const MESSAGES: [(&str, &str); 13] = [
        ("invalid UTF-8 in header", "InvalidHeader"),
        ("invalid JSON in header", "InvalidHeaderDeserialization"),
        ("JSON error", "JsonError"),
        ("header too large", "HeaderTooLarge"),
        ("header too small", "HeaderTooSmall"),
        ("invalid header length", "InvalidHeaderLength"),
        ("tensor `", "TensorNotFound"),
        ("invalid shape, data type, or offset", "TensorInvalidInfo"),
        ("invalid offset for tensor", "InvalidOffset"),
        ("tensor of type", "InvalidTensorView"),
        ("incomplete metadata", "MetadataIncompleteBuffer"),
        ("overflow computing buffer size", "ValidationOverflow"),
        ("The slice is slicing for subbytes", "MisalignedSlice"),
    ];
    match MESSAGES
        .iter()
        .find(|(message, _)| reason.starts_with(message))
    {
        Some((_, variant)) => variant.to_string(),
        None => reason
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(3)
            .collect::<Vec<_>>()
            .join("_"),
    }
}

/// A safetensors file holding `tensors` (name, dtype, shape, raw little-endian bytes).
pub fn safetensors_file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views = tensors.iter().map(|(name, dtype, shape, data)| {
        let view = TensorView::new(*dtype, shape.clone(), data).expect("a consistent tensor");
        (name.to_string(), view)
    });
    safetensors::serialize(views, None).expect("serializable tensors")
}

/// `Net`'s weights, value `i * 0.01 - 0.1` at index `i` of each, written in `dtype` (F32,
/// F64, F16 or BF16).
pub fn net_file(dtype: Dtype) -> Vec<u8> {
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = Net::WEIGHT_NAMES
        .iter()
        .zip(Net::WEIGHT_SHAPES)
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = (0..n).map(|i| i as f32 * 0.01 - 0.1);
            let data: Vec<u8> = match dtype {
                Dtype::F32 => values.flat_map(f32::to_le_bytes).collect(),
                Dtype::F64 => values.flat_map(|v| f64::from(v).to_le_bytes()).collect(),
                Dtype::F16 => values
                    .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
                Dtype::BF16 => values
                    .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
                other => panic!("no float data for {other:?}"),
            };
            (*name, dtype, shape.to_vec(), data)
        })
        .collect();
    safetensors_file(&tensors)
}
