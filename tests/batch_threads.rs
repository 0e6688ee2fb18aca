//! `predict_batch` split across threads (issue 11): on a Dense model, a convolutional model
//! and a masked recurrent model (`tools/oracle/batch_threads.py`), every split of a batch
//! into runs of rows — 2 to 5 threads, two runs each, over batches of 2 to 37 samples, most
//! not divisible by the run count — gives each row exactly the bits (and mask) of the
//! one-thread pass, and Keras's outputs; a batch large enough to pass the work threshold is
//! split by `predict_batch` itself, with the same bits on 1, 2 and 3 threads. Also: a panic
//! in a run reaches the caller and leaves the pool usable, and concurrent callers share it.

mod common;

use common::{assert_close, case, floats, golden};
use kiln::threads::{forward_in_parts, max_threads, set_max_threads, threads_for, work_per_sample};
use kiln::Model;
use serde_json::Value;
use std::sync::Mutex;

kiln::model! {
    DenseStack = Sequential([
        Input(shape = (300,)),
        Dense(64, activation = "relu"),
        Dense(40, activation = "tanh"),
        Dense(5, activation = "softmax"),
    ]);
    ConvStack = Sequential([
        Input(shape = (10, 10, 3)),
        Conv2D(8, 3, activation = "relu"),
        Conv2D(6, 3, strides = 2, padding = "same"),
        MaxPooling2D(),
        Flatten(),
        Dense(64, activation = "relu"),
        Dense(40),
    ]);
    MaskedRnn = Sequential([
        Input(shape = (7, 5)),
        Masking(),
        LSTM(8, return_sequences = true),
        GRU(6, return_sequences = true),
        Dense(3),
    ]);
}

const fn assert_sync<T: Sync>() {}
const _: () = assert_sync::<DenseStack>();
const _: () = assert_sync::<ConvStack>();
const _: () = assert_sync::<MaskedRnn>();

/// `set_max_threads` is process-wide: the tests that change it take turns.
static THREADS: Mutex<()> = Mutex::new(());

/// The model of golden case `name` with Keras's weights, and the case.
fn load<M: Model>(name: &str) -> (M, Value) {
    let case = case(&golden("batch_threads"), name);
    assert_eq!(
        M::INPUT_SHAPE,
        common::dims(&case["input_shape"]).as_slice()
    );
    assert_eq!(
        M::OUTPUT_SHAPE,
        common::dims(&case["output_shape"]).as_slice()
    );
    let mut model = M::new(0);
    let weights = case["weights"].as_object().expect("weights");
    assert_eq!(weights.len(), M::WEIGHT_NAMES.len(), "{name}: weight count");
    for (weight, spec) in weights {
        model
            .set_weight(weight, &floats(&spec["values"]))
            .unwrap_or_else(|e| panic!("{name}: set_weight({weight}): {e}"));
    }
    (model, case)
}

/// The Keras mask of the case as bools, if it has one.
fn keras_mask(case: &Value) -> Option<Vec<bool>> {
    case.get("mask")
        .and_then(Value::as_array)
        .map(|m| m.iter().map(|v| v.as_u64() == Some(1)).collect())
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Every prefix batch of 2 to 37 samples, on 2 to 5 threads: the outputs and masks
/// equal the one-thread pass's bit for bit, and Keras's within tolerance.
fn every_split_has_the_one_thread_bits<M: Model>(name: &str, rtol: f32, atol: f32) {
    let (model, case) = load::<M>(name);
    let (x, y, mask) = (floats(&case["x"]), floats(&case["y"]), keras_mask(&case));
    let (n_in, n_out) = (M::INPUT_LEN, M::OUTPUT_LEN);
    let per_mask = mask.as_ref().map_or(0, |m| m.len() / (x.len() / n_in));
    let (one, one_mask) = forward_in_parts(&model, &x, 1);
    assert_close(&format!("{name}: one thread"), &one, &y, rtol, atol);
    assert_eq!(one_mask, mask, "{name}: one thread's mask");
    for samples in 2..=x.len() / n_in {
        let xs = &x[..samples * n_in];
        let (alone, alone_mask) = forward_in_parts(&model, xs, 1);
        // The rows of a shorter batch are the rows of the whole one.
        assert_eq!(
            bits(&alone),
            bits(&one[..samples * n_out]),
            "{name}: {samples}"
        );
        for threads in 2..=5 {
            let (split, split_mask) = forward_in_parts(&model, xs, threads);
            assert_eq!(
                bits(&split),
                bits(&alone),
                "{name}: {samples} samples on {threads} threads"
            );
            assert_eq!(
                split_mask, alone_mask,
                "{name}: mask, {samples} on {threads}"
            );
            if let Some(mask) = &mask {
                assert_eq!(split_mask.as_deref(), Some(&mask[..samples * per_mask]));
            }
        }
    }
}

#[test]
fn dense_rows_do_not_depend_on_the_split() {
    every_split_has_the_one_thread_bits::<DenseStack>("dense", 1e-5, 1e-6);
}

#[test]
fn conv_rows_do_not_depend_on_the_split() {
    every_split_has_the_one_thread_bits::<ConvStack>("conv", 1e-4, 1e-5);
}

#[test]
fn masked_rnn_rows_and_masks_do_not_depend_on_the_split() {
    every_split_has_the_one_thread_bits::<MaskedRnn>("masked_rnn", 1e-5, 1e-6);
}

/// The case's 37 samples repeated until the batch holds `samples`: each row's expected
/// output is Keras's for its sample.
fn tiled(values: &[f32], per: usize, samples: usize) -> Vec<f32> {
    values.iter().copied().cycle().take(samples * per).collect()
}

/// `predict_batch` (and `predict_batch_with_mask`) on a batch the threshold splits: the
/// split happens, and 1, 2 and 3 threads give the same bits, which match Keras.
fn predict_batch_splits_large_batches<M: Model>(name: &str, rtol: f32, atol: f32) {
    let _turn = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let (model, case) = load::<M>(name);
    let work = work_per_sample(M::INPUT_SHAPE, M::LAYERS, M::WEIGHT_SHAPES);
    let samples = (2 * kiln::threads::MIN_WORK_PER_THREAD).div_ceil(work.max(1)) + 5;
    let x = tiled(&floats(&case["x"]), M::INPUT_LEN, samples);
    let y = tiled(&floats(&case["y"]), M::OUTPUT_LEN, samples);
    assert!(threads_for(samples, work, 2) == 2 && threads_for(samples, work, 3) >= 2);
    let mut outputs = Vec::new();
    for threads in [1, 2, 3] {
        set_max_threads(threads);
        assert_eq!(max_threads(), threads);
        let out = model.predict_batch(&x).expect("predict_batch");
        let (with_mask, mask) = model.predict_batch_with_mask(&x).expect("with mask");
        assert_eq!(bits(&out), bits(&with_mask), "{name}: {threads} threads");
        if let Some(keras) = keras_mask(&case) {
            let per = keras.len() / case["batch"].as_u64().unwrap_or(1) as usize;
            assert_eq!(
                mask,
                Some(tiled_bools(&keras, per, samples)),
                "{name}: mask"
            );
        }
        assert_close(
            &format!("{name}: {samples} samples on {threads} threads"),
            &out,
            &y,
            rtol,
            atol,
        );
        outputs.push(bits(&out));
    }
    set_max_threads(0);
    assert_eq!(outputs[0], outputs[1], "{name}: 1 vs 2 threads");
    assert_eq!(outputs[0], outputs[2], "{name}: 1 vs 3 threads");
}

fn tiled_bools(values: &[bool], per: usize, samples: usize) -> Vec<bool> {
    values.iter().copied().cycle().take(samples * per).collect()
}

#[test]
fn predict_batch_splits_a_large_dense_batch() {
    predict_batch_splits_large_batches::<DenseStack>("dense", 1e-5, 1e-6);
}

#[test]
fn predict_batch_splits_a_large_conv_batch() {
    predict_batch_splits_large_batches::<ConvStack>("conv", 1e-4, 1e-5);
}

#[test]
fn predict_batch_splits_a_large_masked_rnn_batch() {
    predict_batch_splits_large_batches::<MaskedRnn>("masked_rnn", 1e-5, 1e-6);
}

#[test]
fn small_batches_stay_below_the_threshold() {
    // DenseStack: 22,069 weights, each used once a sample, plus its activations: 37
    // samples are about 830,000 multiply-adds, far below what a second thread needs.
    let work = work_per_sample(
        DenseStack::INPUT_SHAPE,
        DenseStack::LAYERS,
        DenseStack::WEIGHT_SHAPES,
    );
    assert_eq!(work, 22_069 + 300 + 64 + 40);
    assert_eq!(threads_for(37, work, 64), 1);
}

kiln::model! {
    /// Panics on a sample whose first value is 1234 (a stand-in for a bug in a user's
    /// `Lambda`), to check what a panic on a pool thread does.
    Panicky = Sequential([
        Input(shape = (512,)),
        Lambda(|x: &kiln::Sample<512, 1>| {
            assert!(x[0] != 1234.0, "sample asked to panic");
            *x
        }),
        Dense(512),
    ]);
}

/// A panic in a run on a pool thread reaches the caller as the same panic, after every
/// other run has finished; the pool serves the next batch as before.
#[test]
fn a_panic_in_a_run_reaches_the_caller_and_the_pool_goes_on() {
    let model = Panicky::new(1);
    let samples = 64;
    let xs: Vec<f32> = (0..samples * 512).map(|i| (i % 7) as f32 * 0.25).collect();
    let expected = forward_in_parts(&model, &xs, 1).0;
    for threads in [2, 3] {
        assert_eq!(
            bits(&forward_in_parts(&model, &xs, threads).0),
            bits(&expected)
        );
    }
    // The last sample (in the last run, which either thread may claim), then every sample
    // (every run panics, on the pool's threads too).
    for panicking in [vec![samples - 1], (0..samples).collect()] {
        let mut xs = xs.clone();
        for &sample in &panicking {
            xs[sample * 512] = 1234.0;
        }
        for threads in [2, 3] {
            let caught = std::panic::catch_unwind(|| forward_in_parts(&model, &xs, threads));
            let payload = caught.expect_err("the run's panic");
            let message = payload.downcast_ref::<&str>().copied();
            assert_eq!(message, Some("sample asked to panic"));
        }
    }
    for threads in [2, 3] {
        assert_eq!(
            bits(&forward_in_parts(&model, &xs, threads).0),
            bits(&expected)
        );
    }
}

/// Batches split by several threads at once: one gets the pool, the others run alone;
/// every result has the one-thread bits.
#[test]
fn concurrent_callers_share_the_pool() {
    let (model, case) = load::<ConvStack>("conv");
    let x = floats(&case["x"]);
    let expected = bits(&forward_in_parts(&model, &x, 1).0);
    std::thread::scope(|scope| {
        for caller in 0..4 {
            let (model, x, expected) = (&model, &x, &expected);
            scope.spawn(move || {
                for round in 0..20 {
                    let threads = 2 + (caller + round) % 3;
                    let out = forward_in_parts(model, x, threads).0;
                    assert_eq!(&bits(&out), expected, "caller {caller}, round {round}");
                }
            });
        }
    });
}
