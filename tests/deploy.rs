//! Deployment: weights baked in with `#[weights = "..."]` give the same model as the file
//! loaded at run time (F32 read in place, F16 converted at compile time), work in a
//! `static`, copy on write, train; and `predict` fits in `PREDICT_STACK_BYTES` of stack.

mod common;

use common::{assert_close, floats};
use kiln::{Loss, Model, Sgd};

kiln::model! {
    /// Baked from an F32 file: its tensors are read in place from `include_bytes!`.
    #[weights = "tests/data/baked/net.safetensors"]
    Baked = Sequential([
        Input(shape = (4,)),
        Dense(5, activation = "tanh"),
        PReLU(),
        Dense(2, use_bias = False),
    ]);

    /// The same file in F16: converted at compile time.
    #[weights = "tests/data/baked/net_f16.safetensors"]
    BakedHalf = Sequential([
        Input(shape = (4,)),
        Dense(5, activation = "tanh"),
        PReLU(),
        Dense(2, use_bias = False),
    ]);

    /// The architecture without baked weights, to load the files at run time.
    Loaded = Sequential([
        Input(shape = (4,)),
        Dense(5, activation = "tanh"),
        PReLU(),
        Dense(2, use_bias = False),
    ]);
}

kiln::model! {
    /// The trained Keras MLP of tests/keras_import/mlp, baked in: Keras's predictions from
    /// the binary's read-only data.
    #[weights = "tests/keras_import/mlp/weights.safetensors"]
    KerasMlp = Sequential([
        Input(shape = (10,)),
        Dense(16, activation = "relu"),
        Dense(8, activation = "tanh"),
        Dense(3, activation = "softmax"),
    ]);
}

#[test]
fn a_baked_keras_model_gives_keras_predictions() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keras_import/mlp/cases.json"
    );
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("cases.json")).expect("json");
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let model = KerasMlp::pretrained();
    for (xs, ys) in x.chunks_exact(10).zip(y.chunks_exact(3)) {
        let out = model.predict(&<KerasMlp as Model>::Input::from_column_slice(xs));
        let out: Vec<f32> = out.iter().copied().collect();
        assert_close("baked Keras MLP", &out, ys, 1e-5, 1e-5);
    }
}

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/baked/");

static IN_ROM: Baked = Baked::pretrained();

fn loaded(file: &str) -> Loaded {
    let mut model = Loaded::new(0);
    model
        .load_weights(format!("{DIR}{file}"))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    model
}

fn assert_same_weights<A: Model, B: Model>(a: &A, b: &B) {
    assert_eq!(A::WEIGHT_NAMES, B::WEIGHT_NAMES);
    for name in A::WEIGHT_NAMES {
        assert_eq!(a.get_weight(name).ok(), b.get_weight(name).ok(), "{name}");
    }
}

const INPUTS: [[f32; 4]; 3] = [[0.5, -1.0, 2.0, 0.0], [0.0; 4], [-3.0, 0.25, 1.5, -0.5]];

#[test]
fn baked_weights_equal_the_file_loaded_at_run_time() {
    let (baked, file) = (Baked::pretrained(), loaded("net.safetensors"));
    assert_same_weights(&baked, &file);
    let half = loaded("net_f16.safetensors");
    assert_same_weights(&BakedHalf::pretrained(), &half);
    for x in INPUTS {
        let typed = <Baked as Model>::Input::from_column_slice(&x);
        let y: Vec<f32> = baked.predict(&typed).iter().copied().collect();
        assert_eq!(Some(y), file.predict_slice(&x).ok());
        assert_eq!(
            BakedHalf::pretrained().predict_slice(&x).ok(),
            half.predict_slice(&x).ok()
        );
    }
    // The F16 file differs from the F32 one by rounding only.
    let (a, b) = (
        baked.get_weight("dense/kernel").unwrap_or_default(),
        half.get_weight("dense/kernel").unwrap_or_default(),
    );
    assert!(a
        .iter()
        .zip(&b)
        .all(|(x, y)| (x - y).abs() < 2e-3 * x.abs().max(1.0)));
}

#[test]
fn a_baked_model_initialises_a_static() {
    for x in INPUTS {
        assert_eq!(
            IN_ROM.predict_slice(&x).ok(),
            loaded("net.safetensors").predict_slice(&x).ok()
        );
    }
}

#[test]
fn writing_a_baked_weight_copies_it_and_leaves_the_binary_alone() {
    let mut model = Baked::pretrained();
    model
        .set_weight("p_re_lu/alpha", &[0.0; 5])
        .expect("set_weight");
    assert_eq!(model.get_weight("p_re_lu/alpha").ok(), Some(vec![0.0; 5]));
    assert_ne!(
        Baked::pretrained().get_weight("p_re_lu/alpha").ok(),
        Some(vec![0.0; 5]),
        "a fresh pretrained() still reads the original values"
    );
    // Training a baked model writes every weight.
    let mut trainer = Baked::pretrained().compile(Sgd::default(), Loss::MeanSquaredError);
    trainer
        .train_on_batch(&[0.5, -1.0, 2.0, 0.0], &[1.0, -1.0])
        .expect("a training step");
    let trained = trainer.into_model();
    assert_ne!(
        trained.get_weight("dense/kernel").ok(),
        Baked::pretrained().get_weight("dense/kernel").ok()
    );
}

#[test]
fn weight_bytes_count_every_parameter() {
    assert_eq!(Baked::WEIGHT_BYTES, Baked::PARAM_COUNT * 4);
    assert_eq!(Baked::PARAM_COUNT, 4 * 5 + 5 + 5 + 5 * 2);
}

kiln::model! {
    /// Wide activations (16 KiB each), so the stack bound matters.
    Wide = Sequential([
        Input(shape = (2048,)),
        Dense(4096, activation = "relu"),
        Dense(4096),
        Softmax(),
        Dense(64),
    ]);

    /// Every layer kind on 8 KiB tensors.
    EveryKind = Sequential([
        Input(shape = (32, 64)),
        Permute((2, 1)),
        Reshape((2048,)),
        Lambda(|x: &kiln::Sample<2048, 1>| x.map(|v| v * 2.0)),
        Dense(64),
        RepeatVector(32),
        Flatten(),
        Reshape((32, 64)),
        Masking(),
        Dense(64, activation = "tanh"),
        Softmax(axis = -2),
        Dropout(0.5),
        ActivityRegularization(l2 = 0.1),
        LeakyReLU(),
        PReLU(),
        ELU(),
        ThresholdedReLU(),
        ReLU(max_value = 6.0),
        Activation("gelu"),
    ]);
}

fn runs_in_its_stack_bound<M: Model + Send + Sync + 'static>(model: M)
where
    M::Output: Send,
{
    const THREAD_START: usize = 32 * 1024;
    let model = std::sync::Arc::new(model);
    let runner = std::sync::Arc::clone(&model);
    let y = std::thread::Builder::new()
        .stack_size(M::PREDICT_STACK_BYTES + THREAD_START)
        .spawn(move || {
            let x = vec![0.01; M::INPUT_LEN];
            let x = Box::new(<M::Input as kiln::Tensor>::from_values(&x));
            let y = runner.predict(&x);
            kiln::Tensor::values(&y).to_vec()
        })
        .expect("thread")
        .join()
        .expect("predict ran");
    let expected = model
        .predict_slice(&vec![0.01; M::INPUT_LEN])
        .expect("predict");
    // Up to rounding: `predict_slice` runs large models through `predict_into`.
    assert_close("predict on its stack bound", &y, &expected, 1e-5, 1e-7);
}

/// Runs `predict` on a thread whose stack is `PREDICT_STACK_BYTES` plus what the thread
/// itself needs to start and run the closure: it would overflow (and abort the test
/// process) if the bound were too small, in the debug build `cargo test` makes.
#[test]
fn predict_fits_in_its_stack_bound() {
    const { assert!(Wide::PREDICT_STACK_BYTES > (2048 + 6 * 4096 + 64) * 4) };
    runs_in_its_stack_bound(Wide::new(1));
    runs_in_its_stack_bound(EveryKind::new(2));
    runs_in_its_stack_bound(Baked::pretrained());
}

#[test]
fn summary_shows_the_memory_a_model_needs() {
    let summary = Baked::summary();
    assert!(summary.contains("Weights: 160.00 B"), "{summary}");
    assert!(
        summary.contains(&format!(
            "Predict stack: at most {} B",
            Baked::PREDICT_STACK_BYTES
        )),
        "{summary}"
    );
}

kiln::model! {
    /// 512 KiB activations: far more than a 2 MiB stack holds as `predict`'s stack values.
    Large = Sequential([
        Input(shape = (256, 512)),
        Dense(512, activation = "relu"),
        Permute((2, 1)),
        LeakyReLU(),
        Flatten(),
        Reshape((512, 256)),
        Masking(mask_value = 0.0),
        Softmax(),
        Dense(8),
    ]);
}

/// `predict_into` keeps every tensor in the caller's memory: the model above runs on a
/// 2 MiB thread in a debug build, with input, output and scratch on the heap, and agrees
/// with `predict_batch` (which keeps its tensors on the heap too).
#[test]
fn predict_into_runs_large_models_on_a_small_stack() {
    const { assert!(Large::PREDICT_INTO_STACK_BYTES < 256 * 1024) };
    const { assert!(Large::PREDICT_STACK_BYTES > 2 * 1024 * 1024) };
    let model = std::sync::Arc::new(Large::new(3));
    let runner = std::sync::Arc::clone(&model);
    let values: Vec<f32> = (0..Large::INPUT_LEN)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
        .collect();
    let x = values.clone();
    let y = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let mut input = Large::new_input_for_test();
            kiln::Tensor::values_mut(&mut *input).copy_from_slice(&x);
            let (mut output, mut scratch) = (Large::new_output(), Large::new_scratch());
            runner.predict_into(&input, &mut output, &mut scratch);
            kiln::Tensor::values(&*output).to_vec()
        })
        .expect("thread")
        .join()
        .expect("predict_into ran");
    let expected = model.predict_batch(&values).expect("predict_batch");
    assert_close("predict_into on a large model", &y, &expected, 1e-5, 1e-6);
}

trait NewInput: Model {
    fn new_input_for_test() -> Box<Self::Input> {
        kiln::heap::zeroed()
    }
}
impl<M: Model> NewInput for M {}

kiln::model! {
    /// The case: 224x224x3 through `Conv2D(64, 3)`, 12.6 MB of output.
    BigConv = Sequential([
        Input(shape = (224, 224, 3)),
        Conv2D(64, 3),
    ]);

    /// A conv net whose intermediates alternate between the two scratch regions.
    ConvNet = Sequential([
        Input(shape = (128, 128, 3)),
        Conv2D(16, 3, padding = "same", activation = "relu"),
        BatchNormalization(),
        MaxPooling2D(),
        ZeroPadding2D(1),
        Conv2D(16, 3, strides = 2),
        ReLU(),
        UpSampling2D(),
        Cropping2D(2),
        GlobalAveragePooling2D(),
        Dense(10, activation = "softmax"),
    ]);
}

/// Runs `predict_into` on a 2 MiB thread with input, output and scratch on the heap, and
/// compares it with `predict_batch` (whose tensors are on the heap too).
fn predict_into_on_a_small_stack<M: Model + Send + Sync + 'static>(model: M) {
    let model = std::sync::Arc::new(model);
    let runner = std::sync::Arc::clone(&model);
    let values: Vec<f32> = (0..M::INPUT_LEN)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
        .collect();
    let x = values.clone();
    let y = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let mut input: Box<M::Input> = kiln::heap::zeroed();
            kiln::Tensor::values_mut(&mut *input).copy_from_slice(&x);
            let (mut output, mut scratch) = (M::new_output(), M::new_scratch());
            runner.predict_into(&input, &mut output, &mut scratch);
            kiln::Tensor::values(&*output).to_vec()
        })
        .expect("thread")
        .join()
        .expect("predict_into ran");
    let expected = model.predict_batch(&values).expect("predict_batch");
    assert_close("predict_into on a small stack", &y, &expected, 1e-4, 1e-5);
    // `predict_slice` takes the same path for such models, on the same small stack.
    let runner = std::sync::Arc::clone(&model);
    let sliced = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || runner.predict_slice(&values).expect("predict_slice"))
        .expect("thread")
        .join()
        .expect("predict_slice ran");
    assert_close(
        "predict_slice on a small stack",
        &sliced,
        &expected,
        1e-4,
        1e-5,
    );
}

#[test]
fn conv_models_with_megabyte_activations_run_on_a_2_mib_stack() {
    const { assert!(BigConv::OUTPUT_LEN * 4 > 12 * 1000 * 1000) };
    const { assert!(BigConv::PREDICT_INTO_STACK_BYTES < 256 * 1024) };
    const { assert!(ConvNet::PREDICT_INTO_STACK_BYTES < 256 * 1024) };
    predict_into_on_a_small_stack(BigConv::new(1));
    predict_into_on_a_small_stack(ConvNet::new(2));
}
