//! Weight files: `weights_to_bytes` / `load_weights_from_bytes` and the path versions round
//! trip; every kind of bad file is a typed error that leaves the model as it was.

use kiln::{Error, Model};
use safetensors::tensor::{Dtype, TensorView};

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(5, activation = "tanh"),
        PReLU(alpha_initializer = "ones"),
        Dense(2, use_bias = False),
    ]);
}

const SHAPES: [(&str, &[usize]); 4] = [
    ("dense/kernel", &[4, 5]),
    ("dense/bias", &[5]),
    ("p_re_lu/alpha", &[5]),
    ("dense_1/kernel", &[5, 2]),
];

/// A safetensors file with the given tensors (name, dtype, shape, raw bytes).
fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views = tensors.iter().map(|(name, dtype, shape, data)| {
        let view = TensorView::new(*dtype, shape.clone(), data).expect("valid test tensor");
        (name.to_string(), view)
    });
    safetensors::serialize(views, None).expect("serializable test file")
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// Net's weights with value `i * 0.01` at index `i` of each, in `dtype`.
fn net_file(dtype: Dtype) -> Vec<u8> {
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = SHAPES
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = (0..n).map(|i| i as f32 * 0.01);
            let data = match dtype {
                Dtype::F32 => f32_bytes(values),
                Dtype::F64 => values.flat_map(|v| f64::from(v).to_le_bytes()).collect(),
                Dtype::F16 => values
                    .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
                Dtype::BF16 => values
                    .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
                other => panic!("no test data for {other:?}"),
            };
            (*name, dtype, shape.to_vec(), data)
        })
        .collect();
    file(&tensors)
}

#[test]
fn bytes_round_trip_weights_and_predictions() {
    let trained = Net::new(1);
    let bytes = trained.weights_to_bytes();
    let mut fresh = Net::new(2);
    assert_ne!(
        fresh.get_weight("dense/kernel").ok(),
        trained.get_weight("dense/kernel").ok()
    );
    fresh
        .load_weights_from_bytes(&bytes)
        .expect("own bytes load");
    for name in Net::WEIGHT_NAMES {
        assert_eq!(fresh.get_weight(name).ok(), trained.get_weight(name).ok());
    }
    let x = [0.3, -0.2, 0.9, 0.0];
    assert_eq!(fresh.predict_slice(&x).ok(), trained.predict_slice(&x).ok());
}

#[test]
fn the_file_is_keras_names_shapes_and_f32() {
    let bytes = Net::new(3).weights_to_bytes();
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let mut names = file.names();
    names.sort();
    assert_eq!(
        names,
        [
            "dense/bias",
            "dense/kernel",
            "dense_1/kernel",
            "p_re_lu/alpha"
        ]
    );
    for (name, shape) in SHAPES {
        let t = file.tensor(name).expect("tensor");
        assert_eq!(t.dtype(), Dtype::F32);
        assert_eq!(t.shape(), shape);
    }
    // Row-major Keras layout: kernel[i][u] at i * units + u, the same as get_weight.
    let kernel = file.tensor("dense/kernel").expect("kernel");
    let values: Vec<f32> = kernel
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(Some(values), Net::new(3).get_weight("dense/kernel").ok());
}

#[test]
fn other_float_dtypes_are_converted() {
    for dtype in [Dtype::F64, Dtype::F16, Dtype::BF16] {
        let mut model = Net::new(0);
        model
            .load_weights_from_bytes(&net_file(dtype))
            .unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        let kernel = model.get_weight("dense/kernel").expect("kernel");
        let tolerance = if dtype == Dtype::F64 { 0.0 } else { 2e-3 };
        for (i, v) in kernel.iter().enumerate() {
            assert!(
                (v - i as f32 * 0.01).abs() <= tolerance,
                "{dtype:?} {i}: {v}"
            );
        }
    }
}

#[test]
fn files_on_disk_round_trip_and_appear_whole() {
    let dir = std::env::temp_dir().join(format!("kiln-weight-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("net.safetensors");
    let model = Net::new(5);
    model.save_weights(&path).expect("save");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["net.safetensors"], "no temporary file left");
    let mut loaded = Net::new(6);
    loaded.load_weights(&path).expect("load");
    assert_eq!(loaded.weights_to_bytes(), model.weights_to_bytes());

    match loaded.load_weights(dir.join("missing.safetensors")) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("missing.safetensors")),
        other => panic!("expected an Io error, got {other:?}"),
    }
    match model.save_weights(dir.join("no/such/dir/net.safetensors")) {
        Err(Error::Io { .. }) => {}
        other => panic!("expected an Io error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Loads `bytes` into a model and checks that it fails and leaves every weight unchanged.
fn refused(bytes: &[u8]) -> Error {
    let mut model = Net::new(9);
    let before = model.weights_to_bytes();
    let error = match model.load_weights_from_bytes(bytes) {
        Ok(()) => panic!("bad file accepted"),
        Err(e) => e,
    };
    assert_eq!(model.weights_to_bytes(), before, "model changed by {error}");
    assert!(!error.to_string().is_empty());
    error
}

#[test]
fn garbage_and_truncated_files_are_refused() {
    assert!(matches!(refused(b""), Error::WeightFile { .. }));
    assert!(matches!(
        refused(b"this is not a weight file"),
        Error::WeightFile { .. }
    ));
    let good = Net::new(1).weights_to_bytes();
    // Cut inside the length, the header and the data.
    for cut in [4, 8, 20, good.len() / 2, good.len() - 1] {
        let error = refused(&good[..cut]);
        assert!(
            matches!(error, Error::WeightFile { .. }),
            "cut at {cut}: {error}"
        );
    }
    // A header length pointing far past the end.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(refused(&huge), Error::WeightFile { .. }));
}

#[test]
fn a_missing_tensor_is_named_with_what_the_model_expects() {
    let bytes = file(&[("dense/kernel", Dtype::F32, vec![4, 5], f32_bytes([0.0; 20]))]);
    match refused(&bytes) {
        Error::MissingWeight {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "dense/bias");
            assert_eq!(expected, Net::WEIGHT_NAMES);
            assert_eq!(found, ["dense/kernel"]);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn an_unexpected_tensor_is_named() {
    let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = SHAPES
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            (*name, Dtype::F32, shape.to_vec(), f32_bytes(vec![0.5; n]))
        })
        .collect();
    tensors.push(("dense_1/bias", Dtype::F32, vec![2], f32_bytes([0.0; 2])));
    match refused(&file(&tensors)) {
        Error::UnexpectedWeight { name, .. } => assert_eq!(name, "dense_1/bias"),
        other => panic!("{other}"),
    }
}

#[test]
fn a_wrong_shape_gives_expected_and_found() {
    let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = SHAPES
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            (*name, Dtype::F32, shape.to_vec(), f32_bytes(vec![0.5; n]))
        })
        .collect();
    tensors[0].2 = vec![5, 4];
    let error = refused(&file(&tensors));
    assert_eq!(
        error.to_string(),
        "weight `dense/kernel` has shape (4, 5), but the file's tensor has shape (5, 4); nothing was loaded"
    );
}

#[test]
fn unsupported_dtypes_and_non_finite_values_are_refused() {
    let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = SHAPES
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            (*name, Dtype::F32, shape.to_vec(), f32_bytes(vec![0.5; n]))
        })
        .collect();
    let mut ints = tensors.clone();
    ints[1] = ("dense/bias", Dtype::I32, vec![5], vec![0; 20]);
    match refused(&file(&ints)) {
        Error::WeightDtype { name, dtype } => {
            assert_eq!((name.as_str(), dtype.as_str()), ("dense/bias", "I32"))
        }
        other => panic!("{other}"),
    }
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut t = tensors.clone();
        t[2].3 = f32_bytes([0.1, 0.2, bad, 0.3, 0.4]);
        match refused(&file(&t)) {
            Error::NonFiniteWeight { name, index, .. } => {
                assert_eq!((name.as_str(), index), ("p_re_lu/alpha", 2))
            }
            other => panic!("{other}"),
        }
    }
    // An F64 beyond f32's range becomes infinite: refused, not loaded as inf.
    tensors[3] = (
        "dense_1/kernel",
        Dtype::F64,
        vec![5, 2],
        [0.0f64, 0.0, 1e39, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    assert!(matches!(
        refused(&file(&tensors)),
        Error::NonFiniteWeight { index: 2, .. }
    ));
}
