//! The API `model!` generates, end to end: the consts, `new(seed)` and the initializers,
//! the three prediction entry points, weight access, every runtime error and its message,
//! `summary()`, and the DSL's spellings (several models per invocation, doc comments and
//! visibility passing through, `True`/`False`/`None`, `input_dim`/`input_shape`).
//!
//! Expected names, shapes, parameter counts and summary cells are Keras 3's: they were
//! printed by Keras 3.15 for the same models (`model.weights`, `count_params()`,
//! `model.summary()`); expected outputs are computed here from Keras's definition of
//! `Dense` (`activation(x · kernel + bias)` on the last axis), never taken from kiln.
// Every public item below must carry docs: the model's `///` comment has to reach the
// generated struct for this file to compile.
#![deny(missing_docs)]

mod common;
use common::assert_close;
use kiln::{Error, Model, Tensor};

kiln::model! {
    /// Classifies 8x8 digit images: three Dense layers, the last one named explicitly.
    pub Digits = Sequential([
        Input(shape = (64,)),
        Dense(128, activation = "relu"),
        Dense(64, activation = "relu"),
        Dense(10, activation = "softmax", name = "head"),
    ]);

    /// Keras 2's `input_dim` on the first layer, and Python's spellings of booleans and None.
    pub InputDim = Sequential([
        Dense(3, input_dim = 4, use_bias = False, activation = None),
        Dense(2, use_bias = True),
    ]);

    /// Keras 2's `input_shape` on the first layer, and Rust's spelling of a boolean.
    pub InputShape = Sequential([
        Dense(3, input_shape = (4,)),
        Dense(2, use_bias = false),
    ]);

    /// A rank-2 input: Dense acts on the last axis of each of the 3 rows.
    pub Rank2 = Sequential([
        Input(shape = (3, 4)),
        Dense(5, activation = "relu"),
        Dense(2),
    ]);

    /// Initializers other than the defaults.
    pub Initialised = Sequential([
        Input(shape = (3,)),
        Dense(4, kernel_initializer = "ones", bias_initializer = "ones"),
        Dense(2, kernel_initializer = "zeros", bias_initializer = Constant(value = 0.5)),
    ]);
}

mod inner {
    kiln::model! {
        /// Visible to the rest of the crate only.
        pub(crate) Hidden = Sequential([Input(shape = (2,)), Dense(1)]);
    }
}

/// Values in [-1, 1) from a small LCG: varied inputs without a dependency.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Keras's Dense on a row-major `(rows, inputs)` tensor with a row-major `(inputs, units)`
/// kernel: `y[r][u] = sum_i x[r][i] * kernel[i][u] + bias[u]`.
fn dense_reference(x: &[f32], kernel: &[f32], bias: &[f32], inputs: usize) -> Vec<f32> {
    let units = kernel.len() / inputs;
    let mut y = Vec::new();
    for row in x.chunks(inputs) {
        for u in 0..units {
            let mut sum = bias.get(u).copied().unwrap_or(0.0) as f64;
            for (i, xi) in row.iter().enumerate() {
                sum += *xi as f64 * kernel[i * units + u] as f64;
            }
            y.push(sum as f32);
        }
    }
    y
}

fn all_weights<M: Model>(m: &M) -> Vec<Vec<f32>> {
    M::WEIGHT_NAMES
        .iter()
        .map(|n| m.get_weight(n).expect("a listed name"))
        .collect()
}

#[test]
fn consts_match_keras() {
    assert_eq!(Digits::NAME, "Digits");
    assert_eq!(Digits::INPUT_SHAPE, &[64]);
    assert_eq!(Digits::OUTPUT_SHAPE, &[10]);
    assert_eq!(Digits::INPUT_LEN, 64);
    assert_eq!(Digits::OUTPUT_LEN, 10);
    assert_eq!(Digits::PARAM_COUNT, 17_226);
    assert_eq!(
        Digits::WEIGHT_NAMES,
        &[
            "dense/kernel",
            "dense/bias",
            "dense_1/kernel",
            "dense_1/bias",
            "head/kernel",
            "head/bias"
        ]
    );
    let shapes: &[&[usize]] = &[&[64, 128], &[128], &[128, 64], &[64], &[64, 10], &[10]];
    assert_eq!(Digits::WEIGHT_SHAPES, shapes);
    let layers: Vec<_> = Digits::LAYERS
        .iter()
        .map(|l| (l.name, l.class, l.output_shape, l.params))
        .collect();
    assert_eq!(
        layers,
        [
            ("dense", "Dense", &[128][..], 8_320),
            ("dense_1", "Dense", &[64][..], 8_256),
            ("head", "Dense", &[10][..], 650),
        ]
    );

    assert_eq!(Rank2::INPUT_SHAPE, &[3, 4]);
    assert_eq!(Rank2::OUTPUT_SHAPE, &[3, 2]);
    assert_eq!((Rank2::INPUT_LEN, Rank2::OUTPUT_LEN), (12, 6));
    assert_eq!(Rank2::PARAM_COUNT, 37);
    let shapes: &[&[usize]] = &[&[4, 5], &[5], &[5, 2], &[2]];
    assert_eq!(Rank2::WEIGHT_SHAPES, shapes);
}

#[test]
fn input_dim_and_input_shape_declare_the_input() {
    assert_eq!(InputDim::INPUT_SHAPE, &[4]);
    assert_eq!(InputShape::INPUT_SHAPE, &[4]);
    assert_eq!(InputDim::OUTPUT_SHAPE, &[2]);
    assert_eq!(InputShape::OUTPUT_SHAPE, &[2]);
    // `use_bias = False` / `false`: no bias weight at all, as in Keras.
    assert_eq!(
        InputDim::WEIGHT_NAMES,
        &["dense/kernel", "dense_1/kernel", "dense_1/bias"]
    );
    assert_eq!(
        InputShape::WEIGHT_NAMES,
        &["dense/kernel", "dense/bias", "dense_1/kernel"]
    );
    assert_eq!(InputDim::PARAM_COUNT, 4 * 3 + 3 * 2 + 2);
    assert_eq!(InputShape::PARAM_COUNT, 4 * 3 + 3 + 3 * 2);
    assert_eq!(inner::Hidden::INPUT_SHAPE, &[2]);
    assert_eq!(
        inner::Hidden::new(0).predict_slice(&[0.0, 0.0]).unwrap(),
        [0.0]
    );
}

#[test]
fn a_layer_without_bias_computes_x_times_kernel() {
    let mut m = InputDim::new(0);
    assert!(matches!(
        m.get_weight("dense/bias"),
        Err(Error::UnknownWeight { .. })
    ));
    let k0 = values(12, 1);
    let (k1, b1) = (values(6, 2), values(2, 3));
    m.set_weight("dense/kernel", &k0).unwrap();
    m.set_weight("dense_1/kernel", &k1).unwrap();
    m.set_weight("dense_1/bias", &b1).unwrap();
    let x = [0.5, -1.0, 2.0, 0.25];
    let h = dense_reference(&x, &k0, &[], 4);
    let expected = dense_reference(&h, &k1, &b1, 3);
    assert_close(
        "no-bias model",
        &m.predict_slice(&x).unwrap(),
        &expected,
        1e-6,
        1e-6,
    );
}

#[test]
fn new_is_deterministic_per_seed() {
    let a = all_weights(&Digits::new(7));
    assert_eq!(a, all_weights(&Digits::new(7)), "same seed, same weights");
    let b = all_weights(&Digits::new(8));
    for (i, name) in Digits::WEIGHT_NAMES.iter().enumerate() {
        if name.ends_with("kernel") {
            assert_ne!(a[i], b[i], "{name}: another seed gives other values");
        }
    }
    // And the predictions follow the weights.
    let x = values(64, 9);
    assert_eq!(
        Digits::new(7).predict_slice(&x).unwrap(),
        Digits::new(7).predict_slice(&x).unwrap()
    );
}

#[test]
fn defaults_are_glorot_uniform_kernels_and_zero_biases() {
    let m = Digits::new(3);
    for (name, shape) in Digits::WEIGHT_NAMES.iter().zip(Digits::WEIGHT_SHAPES) {
        let w = m.get_weight(name).unwrap();
        assert_eq!(w.len(), shape.iter().product::<usize>(), "{name}");
        if name.ends_with("bias") {
            assert!(
                w.iter().all(|v| *v == 0.0),
                "{name}: Keras's bias default is zeros"
            );
            continue;
        }
        // glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).
        let limit = (6.0 / (shape[0] + shape[1]) as f32).sqrt();
        let max = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            max <= limit,
            "{name}: {max} beyond the glorot limit {limit}"
        );
        assert!(
            max > 0.9 * limit,
            "{name}: {max} does not fill the range up to {limit}"
        );
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        assert!(mean.abs() < 0.1 * limit, "{name}: mean {mean}");
        // Variance of U(-l, l) is l^2 / 3.
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        let expected = limit * limit / 3.0;
        assert!(
            (var - expected).abs() < 0.15 * expected,
            "{name}: variance {var}"
        );
    }
}

#[test]
fn initializer_arguments_are_honoured() {
    let m = Initialised::new(0);
    assert_eq!(m.get_weight("dense/kernel").unwrap(), vec![1.0; 12]);
    assert_eq!(m.get_weight("dense/bias").unwrap(), vec![1.0; 4]);
    assert_eq!(m.get_weight("dense_1/kernel").unwrap(), vec![0.0; 8]);
    assert_eq!(m.get_weight("dense_1/bias").unwrap(), vec![0.5; 2]);
    // Zero kernel: the output is the bias whatever the input.
    assert_eq!(m.predict_slice(&[3.0, -2.0, 8.0]).unwrap(), [0.5, 0.5]);
}

#[test]
fn typed_slice_and_batch_predictions_agree() {
    let m = Digits::new(11);
    let samples = 5;
    let xs = values(samples * 64, 4);
    let batch = m.predict_batch(&xs).unwrap();
    assert_eq!(batch.len(), samples * 10);
    for (s, x) in xs.chunks(64).enumerate() {
        let slice = m.predict_slice(x).unwrap();
        let typed = m.predict(&<Digits as Model>::Input::from_values(x));
        assert_eq!(
            typed.values(),
            slice.as_slice(),
            "sample {s}: typed vs slice"
        );
        // The batch goes through a matrix-matrix product, which may round differently.
        assert_close(
            &format!("sample {s}: batch vs slice"),
            &batch[s * 10..(s + 1) * 10],
            &slice,
            1e-5,
            1e-7,
        );
        assert!(
            (slice.iter().sum::<f32>() - 1.0).abs() < 1e-5,
            "softmax sums to 1"
        );
    }
}

#[test]
fn rank_two_input_applies_dense_to_the_last_axis() {
    let mut m = Rank2::new(0);
    let (k0, b0, k1, b1) = (values(20, 1), values(5, 2), values(10, 3), values(2, 4));
    m.set_weight("dense/kernel", &k0).unwrap();
    m.set_weight("dense/bias", &b0).unwrap();
    m.set_weight("dense_1/kernel", &k1).unwrap();
    m.set_weight("dense_1/bias", &b1).unwrap();

    let samples = 3;
    let xs = values(samples * 12, 5);
    let mut expected = Vec::new();
    for x in xs.chunks(12) {
        let mut h = dense_reference(x, &k0, &b0, 4);
        h.iter_mut().for_each(|v| *v = v.max(0.0));
        expected.extend(dense_reference(&h, &k1, &b1, 5));
    }
    assert_close(
        "batch",
        &m.predict_batch(&xs).unwrap(),
        &expected,
        1e-5,
        1e-6,
    );
    for (s, x) in xs.chunks(12).enumerate() {
        let want = &expected[s * 6..(s + 1) * 6];
        let slice = m.predict_slice(x).unwrap();
        assert_close(&format!("slice {s}"), &slice, want, 1e-5, 1e-6);
        // The typed input of shape (3, 4) is a 4 x 3 matrix: column t is row t of the sample.
        let typed_in = <Rank2 as Model>::Input::from_values(x);
        assert_eq!((typed_in.nrows(), typed_in.ncols()), (4, 3));
        assert_eq!(typed_in[(1, 2)], x[2 * 4 + 1]);
        let typed = m.predict(&typed_in);
        assert_eq!((typed.nrows(), typed.ncols()), (2, 3));
        assert_eq!(typed.values(), slice.as_slice());
    }
}

#[test]
fn an_empty_batch_gives_no_outputs() {
    assert_eq!(
        Digits::new(0).predict_batch(&[]).unwrap(),
        Vec::<f32>::new()
    );
    assert_eq!(Rank2::new(0).predict_batch(&[]).unwrap(), Vec::<f32>::new());
}

#[test]
fn wrong_input_lengths_are_errors() {
    let m = Digits::new(0);
    let e = m.predict_slice(&[0.0; 63]).unwrap_err();
    assert!(
        matches!(e, Error::InputLength { expected: 64, found: 63, ref shape } if shape.0 == [64]),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "expected 64 input values (one sample of shape (64,)), found 63"
    );
    // A batch is not a sample.
    assert!(matches!(
        m.predict_slice(&[0.0; 128]),
        Err(Error::InputLength { found: 128, .. })
    ));

    let e = m.predict_batch(&[0.0; 65]).unwrap_err();
    assert!(
        matches!(e, Error::BatchLength { per_sample: 64, found: 65, ref shape } if shape.0 == [64]),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "a batch of samples of shape (64,) needs a multiple of 64 values, found 65"
    );
    let e = Rank2::new(0).predict_batch(&[0.0; 18]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a batch of samples of shape (3, 4) needs a multiple of 12 values, found 18"
    );
}

#[test]
fn non_finite_inputs_are_errors_naming_the_first_bad_index() {
    let m = Digits::new(0);
    let mut x = vec![0.5; 64];
    x[5] = f32::NAN;
    let e = m.predict_slice(&x).unwrap_err();
    assert!(
        matches!(e, Error::NonFiniteInput { index: 5, value } if value.is_nan()),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "input value at index 5 is NaN, expected a finite number"
    );

    // In a batch, at and around every 64-value boundary, the first bad value is named.
    let len = 4 * 64;
    for index in [0, 1, 62, 63, 64, 65, 127, 128, 200, len - 1] {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut xs = vec![0.25; len];
            xs[index] = bad;
            if index + 3 < len {
                xs[index + 3] = f32::NAN;
            }
            match m.predict_batch(&xs) {
                Err(Error::NonFiniteInput { index: i, value }) => {
                    assert_eq!(i, index, "{bad}");
                    assert_eq!(value.to_bits(), bad.to_bits());
                }
                other => panic!("index {index}, {bad}: {other:?}"),
            }
        }
    }
    let mut xs = vec![0.0; 64];
    xs[63] = f32::NEG_INFINITY;
    assert_eq!(
        m.predict_batch(&xs).unwrap_err().to_string(),
        "input value at index 63 is -inf, expected a finite number"
    );
    // Large but finite values are fine.
    assert!(m.predict_slice(&[f32::MAX; 64]).is_ok());
}

#[test]
fn unknown_weight_names_list_the_model_s_weights() {
    let mut m = Digits::new(0);
    let e = m.get_weight("dense/kernal").unwrap_err();
    assert_eq!(
        e,
        Error::UnknownWeight {
            name: "dense/kernal".into(),
            expected: Digits::WEIGHT_NAMES.to_vec(),
        }
    );
    assert_eq!(
        e.to_string(),
        "no weight named `dense/kernal`; the model's weights are: dense/kernel, dense/bias, \
         dense_1/kernel, dense_1/bias, head/kernel, head/bias"
    );
    let before = all_weights(&m);
    assert!(matches!(
        m.set_weight("dense_2/bias", &[0.0; 10]),
        Err(Error::UnknownWeight { .. })
    ));
    assert_eq!(all_weights(&m), before);
}

#[test]
fn wrong_weight_lengths_name_the_shape() {
    let mut m = Digits::new(0);
    let before = all_weights(&m);
    let e = m.set_weight("dense/kernel", &[0.0; 10]).unwrap_err();
    assert!(
        matches!(e, Error::WeightLength { expected: 8192, found: 10, ref name, ref shape }
            if name == "dense/kernel" && shape.0 == [64, 128]),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "weight `dense/kernel` has shape (64, 128) and takes 8192 values, found 10"
    );
    let e = m.set_weight("head/bias", &[0.0; 11]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "weight `head/bias` has shape (10,) and takes 10 values, found 11"
    );
    assert_eq!(all_weights(&m), before, "nothing was written");
}

#[test]
fn non_finite_weights_are_rejected_and_nothing_is_written() {
    let mut m = Digits::new(0);
    let before = all_weights(&m);
    let mut bias = vec![0.1; 10];
    bias[3] = f32::NAN;
    let e = m.set_weight("head/bias", &bias).unwrap_err();
    assert!(
        matches!(e, Error::NonFiniteWeight { index: 3, value, ref name } if value.is_nan() && name == "head/bias"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "weight `head/bias` value at index 3 is NaN, expected a finite number; nothing was written"
    );
    let mut kernel = vec![0.0; 64 * 128];
    kernel[8191] = f32::INFINITY;
    let e = m.set_weight("dense/kernel", &kernel).unwrap_err();
    assert!(
        matches!(e, Error::NonFiniteWeight { index: 8191, .. }),
        "{e:?}"
    );
    assert_eq!(all_weights(&m), before, "nothing was written");
}

#[test]
fn errors_are_std_errors() {
    fn source_of(e: &dyn std::error::Error) -> String {
        e.to_string()
    }
    let e = Digits::new(0).predict_slice(&[]).unwrap_err();
    assert_eq!(
        source_of(&e),
        "expected 64 input values (one sample of shape (64,)), found 0"
    );
}

#[test]
fn set_and_get_weight_round_trip() {
    let mut m = Digits::new(0);
    for (i, (name, shape)) in Digits::WEIGHT_NAMES
        .iter()
        .zip(Digits::WEIGHT_SHAPES)
        .enumerate()
    {
        let w = values(shape.iter().product(), 100 + i as u64);
        m.set_weight(name, &w).unwrap();
        assert_eq!(m.get_weight(name).unwrap(), w, "{name}");
    }
    // Setting one weight leaves the others alone.
    let before = all_weights(&m);
    m.set_weight("dense_1/bias", &[2.0; 64]).unwrap();
    let after = all_weights(&m);
    for (i, name) in Digits::WEIGHT_NAMES.iter().enumerate() {
        if *name != "dense_1/bias" {
            assert_eq!(after[i], before[i], "{name}");
        }
    }
    // And predictions use what was set: the first layer computed by hand.
    let mut m = Digits::new(0);
    let (k, b) = (values(64 * 128, 1), values(128, 2));
    m.set_weight("dense/kernel", &k).unwrap();
    m.set_weight("dense/bias", &b).unwrap();
    m.set_weight("dense_1/kernel", &identity_like(128, 64))
        .unwrap();
    m.set_weight("head/kernel", &identity_like(64, 10)).unwrap();
    let x = values(64, 3);
    let mut h = dense_reference(&x, &k, &b, 64);
    h.iter_mut().for_each(|v| *v = v.max(0.0));
    // dense_1 and head pass the first 10 units through (they are non-negative after relu).
    let logits = &h[..10];
    let max = logits.iter().fold(f32::MIN, |m, v| m.max(*v));
    let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let expected: Vec<f32> = exps.iter().map(|e| e / sum).collect();
    assert_close(
        "set weights",
        &m.predict_slice(&x).unwrap(),
        &expected,
        1e-5,
        1e-6,
    );
}

/// A row-major `(inputs, units)` kernel with ones on the diagonal: unit `u` copies input `u`.
fn identity_like(inputs: usize, units: usize) -> Vec<f32> {
    let mut k = vec![0.0; inputs * units];
    for u in 0..units.min(inputs) {
        k[u * units + u] = 1.0;
    }
    k
}

#[test]
fn summary_is_a_keras_like_table() {
    let s = Digits::summary();
    assert!(s.starts_with("Model: \"Digits\"\n"), "{s}");
    for header in ["Layer (type)", "Output Shape", "Param #"] {
        assert!(s.contains(header), "{header}\n{s}");
    }
    // Rows in order, each with Keras's cells.
    let rows = [
        ("dense (Dense)", "(None, 128)", "8,320"),
        ("dense_1 (Dense)", "(None, 64)", "8,256"),
        ("head (Dense)", "(None, 10)", "650"),
    ];
    let mut from = 0;
    for (layer, shape, params) in rows {
        let line = s[from..]
            .lines()
            .find(|l| l.contains(layer))
            .unwrap_or_else(|| panic!("no row for {layer} after byte {from}\n{s}"));
        let cells: Vec<&str> = line
            .split('│')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells, [layer, shape, params], "{line}");
        from = s.find(line).unwrap() + line.len();
    }
    assert!(s.contains(" Total params: 17,226 (67.29 KB)\n"), "{s}");
    assert!(s.contains(" Trainable params: 17,226 (67.29 KB)\n"), "{s}");
    assert!(s.contains(" Non-trainable params: 0 (0.00 B)"), "{s}");

    let s = Rank2::summary();
    assert!(
        s.contains("(None, 3, 5)") && s.contains("(None, 3, 2)"),
        "{s}"
    );
    assert!(s.contains(" Total params: 37 (148.00 B)"), "{s}");
}
