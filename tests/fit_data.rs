//! `fit`'s data: `sample_weight`, `class_weight`, `initial_epoch` and `shuffle = false`
//! against Keras (`tools/oracle/fit_data.py`); datasets that stream (`fit_dataset`);
//! the typed errors of bad data and of training that diverges; and no allocation per step
//! with callbacks, on one thread and two.

mod common;

use common::{assert_close, golden};
use kiln::callbacks::{LogValues, ReduceLROnPlateau, Training};
use kiln::{batches, Callback, Dataset, Error, FitOptions, Loss, Model, Sgd};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

kiln::model! {
    Net = Sequential([
        Input(shape = (6,)),
        Dense(4, activation = "tanh"),
        Dense(3, activation = "softmax"),
    ]);
}

fn loss_named(name: &str) -> Loss {
    match name {
        "mse" => Loss::MeanSquaredError,
        other => Loss::from_name(other).expect("a Keras loss"),
    }
}

fn trainer_for(case: &serde_json::Value) -> kiln::Trainer<Net, Sgd> {
    let mut model = Net::new(0);
    for (name, values) in case["weights"].as_object().unwrap() {
        model
            .set_weight(name, &common::floats(values))
            .expect("Keras's weight names");
    }
    model.compile(
        Sgd {
            learning_rate: 0.1,
            ..Sgd::default()
        },
        loss_named(case["loss"].as_str().unwrap()),
    )
}

#[test]
fn weighted_fits_match_keras() {
    let cases = golden("fit_data");
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (x, y) = (common::floats(&case["x"]), common::floats(&case["y"]));
        let sample_weight = case.get("sample_weight").map(common::floats);
        let class_weight = case.get("class_weight").map(common::floats);
        let mut trainer = trainer_for(case);
        let options = FitOptions {
            epochs: case["epochs"].as_u64().unwrap() as usize,
            batch_size: 4,
            shuffle: false,
            verbose: false,
            sample_weight: sample_weight.as_deref(),
            class_weight: class_weight.as_deref(),
            initial_epoch: case["initial_epoch"].as_u64().unwrap_or(0) as usize,
            ..FitOptions::default()
        };
        let history = trainer.fit(&x, &y, &options).expect("fit");
        assert_close(
            &format!("{name}: loss per epoch"),
            history.get("loss").unwrap(),
            &common::floats(&case["history"]),
            1e-5,
            1e-6,
        );
        let model = trainer.into_model();
        for (weight, values) in case["after"].as_object().unwrap() {
            assert_close(
                &format!("{name}: {weight} after fit"),
                &model.get_weight(weight).unwrap(),
                &common::floats(values),
                1e-5,
                1e-6,
            );
        }
    }
}

#[test]
fn sample_and_class_weights_together_are_refused() {
    let (x, y) = ([0.1f32; 12], [0.0f32, 1.0]);
    let mut trainer = Net::new(1).compile(
        Sgd::default(),
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    );
    let options = FitOptions {
        sample_weight: Some(&[1.0, 2.0]),
        class_weight: Some(&[1.0, 2.0, 3.0]),
        verbose: false,
        ..FitOptions::default()
    };
    let error = trainer.fit(&x, &y, &options).unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidOption {
                name: "class_weight",
                ..
            }
        ),
        "{error}"
    );
    let options = FitOptions {
        sample_weight: Some(&[1.0]),
        verbose: false,
        ..FitOptions::default()
    };
    assert_eq!(
        trainer.fit(&x, &y, &options).unwrap_err(),
        Error::SampleWeightLength {
            expected: 2,
            found: 1
        }
    );
}

/// The samples of `x`, `y` in batches of `size`, as a dataset reading them one batch at a
/// time (what a file reader would do).
struct Chunks<'d> {
    x: &'d [f32],
    y: &'d [f32],
    size: usize,
    next: usize,
    steps: Option<usize>,
}

impl Dataset for Chunks<'_> {
    fn steps_per_epoch(&self) -> Option<usize> {
        self.steps
    }
    fn start_epoch(&mut self, _epoch: usize) -> Result<(), Error> {
        self.next = 0;
        Ok(())
    }
    fn next_batch(
        &mut self,
        x: &mut Vec<f32>,
        y: &mut Vec<f32>,
        _w: &mut Vec<f32>,
    ) -> Result<bool, Error> {
        let n = self.y.len();
        if self.next >= n {
            return Ok(false);
        }
        let end = (self.next + self.size).min(n);
        x.extend_from_slice(&self.x[self.next * 6..end * 6]);
        y.extend_from_slice(&self.y[self.next..end]);
        self.next = end;
        Ok(true)
    }
}

fn digits_like(samples: usize) -> (Vec<f32>, Vec<f32>) {
    let x = (0..samples * 6)
        .map(|i| ((i * 13) % 11) as f32 * 0.1 - 0.5)
        .collect();
    let y = (0..samples).map(|i| (i % 3) as f32).collect();
    (x, y)
}

#[test]
fn a_streamed_dataset_trains_as_the_same_arrays_do() {
    let (x, y) = digits_like(40);
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
    let options = FitOptions {
        epochs: 3,
        batch_size: 8,
        shuffle: false,
        verbose: false,
        ..FitOptions::default()
    };
    let mut arrays = Net::new(4).compile(Sgd::default(), loss);
    let from_arrays = arrays.fit(&x, &y, &options).unwrap();
    let mut streamed = Net::new(4).compile(Sgd::default(), loss);
    let mut data = Chunks {
        x: &x,
        y: &y,
        size: 8,
        next: 0,
        steps: Some(5),
    };
    let from_stream = streamed.fit_dataset(&mut data, &options, &mut []).unwrap();
    assert_eq!(from_arrays.get("loss"), from_stream.get("loss"));
    assert_eq!(
        arrays.model().weights_to_bytes(),
        streamed.model().weights_to_bytes()
    );

    // `steps_per_epoch` ends each epoch early; the closure form streams too.
    let mut short = Net::new(4).compile(Sgd::default(), loss);
    let mut data = batches(|_epoch| {
        x.chunks(6 * 8)
            .zip(y.chunks(8))
            .map(|(bx, by)| Ok::<_, String>((bx.to_vec(), by.to_vec())))
    });
    let steps = FitOptions {
        steps_per_epoch: Some(2),
        ..options.clone()
    };
    let mut counter = StepCounter::default();
    short
        .fit_dataset(&mut data, &steps, &mut [&mut counter])
        .unwrap();
    assert_eq!(counter.steps, 6);
    assert_eq!(counter.known, Some(2));
}

#[derive(Default)]
struct StepCounter {
    steps: usize,
    known: Option<usize>,
}

impl Callback for StepCounter {
    fn on_train_batch_end(
        &mut self,
        _b: usize,
        _l: &mut LogValues,
        t: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.steps += 1;
        self.known = t.steps();
        Ok(())
    }
}

#[test]
fn a_dataset_error_and_a_bad_batch_end_fit_with_typed_errors() {
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
    let options = FitOptions {
        verbose: false,
        ..FitOptions::default()
    };
    let mut trainer = Net::new(4).compile(Sgd::default(), loss);
    let mut failing = batches(|_| std::iter::once(Err::<(Vec<f32>, Vec<f32>), _>("disk on fire")));
    assert_eq!(
        trainer
            .fit_dataset(&mut failing, &options, &mut [])
            .unwrap_err(),
        Error::Dataset {
            message: "disk on fire".into()
        }
    );
    let mut out_of_range = batches(|_| std::iter::once(Ok::<_, String>((vec![0.0; 6], vec![3.0]))));
    assert_eq!(
        trainer
            .fit_dataset(&mut out_of_range, &options, &mut [])
            .unwrap_err(),
        Error::LabelOutOfRange {
            index: 0,
            value: 3.0,
            classes: 3
        }
    );
    let mut empty = batches(|_| std::iter::empty::<Result<(Vec<f32>, Vec<f32>), String>>());
    assert!(matches!(
        trainer
            .fit_dataset(&mut empty, &options, &mut [])
            .unwrap_err(),
        Error::EmptyData { .. }
    ));
}

#[test]
fn bad_data_and_options_are_typed_errors() {
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
    let mut trainer = Net::new(4).compile(Sgd::default(), loss);
    let options = FitOptions {
        verbose: false,
        ..FitOptions::default()
    };
    let (x, y) = digits_like(4);
    assert_eq!(
        trainer.fit(&[], &[], &options).unwrap_err(),
        Error::EmptyData { what: "`x`" }
    );
    let zero = FitOptions {
        batch_size: 0,
        ..options.clone()
    };
    assert!(matches!(
        trainer.fit(&x, &y, &zero).unwrap_err(),
        Error::InvalidOption {
            name: "batch_size",
            ..
        }
    ));
    assert!(matches!(
        trainer.fit(&x, &y[..3], &options).unwrap_err(),
        Error::LabelLength {
            expected: 4,
            found: 3,
            ..
        }
    ));
    let mut bad = y.clone();
    bad[2] = 3.0;
    assert_eq!(
        trainer.fit(&x, &bad, &options).unwrap_err(),
        Error::LabelOutOfRange {
            index: 2,
            value: 3.0,
            classes: 3
        }
    );
    bad[2] = 0.5;
    assert!(matches!(
        trainer.fit(&x, &bad, &options).unwrap_err(),
        Error::LabelOutOfRange { index: 2, .. }
    ));
    bad[2] = -1.0;
    assert!(matches!(
        trainer.train_on_batch(&x, &bad).unwrap_err(),
        Error::LabelOutOfRange { index: 2, .. }
    ));
}

kiln::model! {
    Line = Sequential([Input(shape = (1,)), Dense(1)]);
}

/// A loss that becomes infinite stops `fit` before the bad step's update: the error names
/// the epoch and step, and the weights are those after the steps before it.
#[test]
fn divergence_stops_fit_with_the_weights_before_the_bad_step() {
    let x = [0.5f32, -0.5, 1.0, 2.0, 0.25, 1.5];
    // The third batch (samples 4 and 5) has a label whose square overflows f32.
    let y = [1.0f32, 0.0, 2.0, 1.0, 3e30, 1.0];
    for threads in [1, 2] {
        let options = FitOptions {
            epochs: 3,
            batch_size: 2,
            shuffle: false,
            verbose: false,
            threads,
            ..FitOptions::default()
        };
        let mut trainer = Line::new(3).compile(Sgd::default(), Loss::MeanSquaredError);
        let error = trainer.fit(&x, &y, &options).unwrap_err();
        match &error {
            Error::Diverged {
                epoch: 0,
                step: 2,
                quantity,
                value,
                weights_kept: true,
            } => {
                assert_eq!(quantity, "the loss");
                assert!(value.is_infinite());
            }
            other => panic!("threads {threads}: {other:?}"),
        }
        assert!(
            error
                .to_string()
                .starts_with("training diverged in epoch 1 at step 3: the loss is inf"),
            "{error}"
        );
        // The weights after exactly the two good steps.
        let mut reference = Line::new(3).compile(Sgd::default(), Loss::MeanSquaredError);
        reference.train_on_batch(&x[..2], &y[..2]).unwrap();
        reference.train_on_batch(&x[2..4], &y[2..4]).unwrap();
        assert_eq!(
            trainer.model().weights_to_bytes(),
            reference.model().weights_to_bytes(),
            "threads {threads}"
        );
    }
}

// --- allocations -------------------------------------------------------------------------

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// A callback that reads the batch logs at every step.
#[derive(Default)]
struct ReadsLogs(f32);

impl Callback for ReadsLogs {
    fn on_train_batch_end(
        &mut self,
        _b: usize,
        logs: &mut LogValues,
        _t: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.0 += logs.get("loss").unwrap_or(0.0);
        Ok(())
    }
}

/// With callbacks and sample weights, an epoch of 20 steps allocates exactly as often as
/// one of 2 (per-epoch bookkeeping only), on one thread and on two.
#[test]
fn fit_with_callbacks_allocates_per_epoch_not_per_step() {
    let (x, y) = digits_like(160);
    let weights: Vec<f32> = (0..160).map(|i| 0.5 + (i % 3) as f32 * 0.25).collect();
    for threads in [1, 2] {
        let mut trainer = Net::new(0).compile(
            Sgd::default(),
            Loss::SparseCategoricalCrossentropy { from_logits: false },
        );
        let mut reads = ReadsLogs::default();
        let mut plateau = ReduceLROnPlateau {
            monitor: "loss".into(),
            ..ReduceLROnPlateau::default()
        };
        let options = FitOptions {
            batch_size: 8,
            verbose: false,
            threads,
            sample_weight: Some(&weights),
            ..FitOptions::default()
        };
        let short = FitOptions {
            sample_weight: Some(&weights[..16]),
            ..options.clone()
        };
        trainer
            .fit_with(&x, &y, &options, &mut [&mut reads, &mut plateau])
            .unwrap();
        trainer
            .fit_with(
                &x[..16 * 6],
                &y[..16],
                &short,
                &mut [&mut reads, &mut plateau],
            )
            .unwrap();
        let two = allocations_during(|| {
            trainer
                .fit_with(
                    &x[..16 * 6],
                    &y[..16],
                    &short,
                    &mut [&mut reads, &mut plateau],
                )
                .unwrap();
        });
        trainer
            .fit_with(&x, &y, &options, &mut [&mut reads, &mut plateau])
            .unwrap();
        let twenty = allocations_during(|| {
            trainer
                .fit_with(&x, &y, &options, &mut [&mut reads, &mut plateau])
                .unwrap();
        });
        assert_eq!(
            twenty, two,
            "threads {threads}: 20 steps allocated {twenty} times, 2 steps {two}"
        );
    }
}
