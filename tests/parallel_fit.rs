//! `fit` with `FitOptions::threads > 1`: each batch split across threads, each thread
//! updating its piece of every weight. The same run on one thread is the reference: the
//! weights must agree up to rounding, whichever update path runs (pieces on every thread,
//! or the whole update on the calling thread for clipping and constraints), and a
//! threaded run must repeat itself bit for bit.

use kiln::{Adam, FitOptions, GradientClip, Loss, Metric, Model, Optimizer, Sgd, Trainable};

kiln::model! {
    /// Dropout (one random stream per share), a regularizer and every weight kind.
    Regularized = Sequential([
        Input(shape = (12,)),
        Dense(40, activation = "relu", kernel_regularizer = l2(0.01)),
        Dropout(0.3),
        Dense(24, activation = "tanh", bias_regularizer = l1(0.001)),
        PReLU(),
        Dense(5, activation = "softmax"),
    ]);
    /// No randomness: threaded and one-thread runs follow the same trajectory.
    Plain = Sequential([
        Input(shape = (12,)),
        Dense(40, activation = "relu", kernel_regularizer = l2(0.01)),
        Dense(24, activation = "tanh"),
        PReLU(),
        Dense(5, activation = "softmax"),
    ]);
    /// A constraint needs whole weights: the update runs on the calling thread.
    Constrained = Sequential([
        Input(shape = (12,)),
        Dense(40, activation = "relu", kernel_constraint = max_norm(0.5)),
        Dense(5, activation = "softmax"),
    ]);
}

/// 203 samples (an uneven last batch), 12 features, 5 classes as integer labels.
fn data() -> (Vec<f32>, Vec<f32>) {
    let x = (0..203 * 12)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let y = (0..203).map(|i| ((i * 7) % 5) as f32).collect();
    (x, y)
}

fn weights<M: Model>(model: &M) -> Vec<Vec<f32>> {
    M::WEIGHT_NAMES
        .iter()
        .map(|name| model.get_weight(name).expect("weight"))
        .collect()
}

/// Weights and per-epoch losses after `epochs` of `fit` with `threads`.
fn train<M: Trainable + Send + Sync, O: Optimizer>(
    optimizer: O,
    threads: usize,
    batch_size: usize,
) -> (Vec<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (x, y) = data();
    let mut trainer = M::new(3)
        .compile(
            optimizer,
            Loss::SparseCategoricalCrossentropy { from_logits: false },
        )
        .with_metrics(&[Metric::Accuracy]);
    let options = FitOptions {
        epochs: 4,
        batch_size,
        seed: 11,
        verbose: false,
        validation_split: 0.1,
        threads,
        ..FitOptions::default()
    };
    let history = trainer.fit(&x, &y, &options).expect("fit");
    let loss = history.get("loss").expect("loss").to_vec();
    let accuracy = history.get("val_accuracy").expect("val_accuracy").to_vec();
    (weights(trainer.model()), loss, accuracy)
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], tolerance: f32, what: &str) {
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tolerance * (1.0 + x.abs()),
                "{what}: weight {i}[{j}]: {x} vs {y}"
            );
        }
    }
}

#[test]
fn threaded_fit_matches_one_thread_up_to_rounding() {
    for batch_size in [32, 7, 1] {
        let (one, one_loss, one_accuracy) = train::<Plain, _>(Adam::default(), 1, batch_size);
        for threads in [2, 3] {
            let (many, loss, accuracy) = train::<Plain, _>(Adam::default(), threads, batch_size);
            let what = format!("Adam, batch {batch_size}, {threads} threads");
            assert_close(&one, &many, 1e-4, &what);
            for (a, b) in one_loss.iter().zip(&loss) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                    "{what}: loss {a} vs {b}"
                );
            }
            assert_eq!(one_accuracy, accuracy, "{what}: validation accuracy");
        }
    }
}

#[test]
fn whole_weight_updates_run_on_the_calling_thread() {
    // A constraint, and gradient clipping by global norm, each need all of a weight.
    let (one, ..) = train::<Constrained, _>(Adam::default(), 1, 16);
    let (two, ..) = train::<Constrained, _>(Adam::default(), 2, 16);
    assert_close(&one, &two, 1e-4, "max_norm constraint");
    let clipped = || Sgd {
        learning_rate: 0.1,
        momentum: 0.9,
        clip: GradientClip::GlobalNorm(0.5),
        ..Sgd::default()
    };
    let (one, ..) = train::<Plain, _>(clipped(), 1, 16);
    let (two, ..) = train::<Plain, _>(clipped(), 2, 16);
    assert_close(&one, &two, 1e-4, "global-norm clipping");
}

#[test]
fn threaded_fit_repeats_bit_for_bit() {
    let first = train::<Regularized, _>(Adam::default(), 2, 16);
    let second = train::<Regularized, _>(Adam::default(), 2, 16);
    assert_eq!(first, second);
    // Dropout draws a different stream for the second share, so the run differs from the
    // one-thread run (which is itself repeatable).
    let one = train::<Regularized, _>(Adam::default(), 1, 16);
    assert_ne!(first.0, one.0);
    assert!(first.1.iter().all(|l| l.is_finite()));
}

#[test]
fn zero_threads_is_an_error() {
    let (x, y) = data();
    let mut trainer = Plain::new(0).compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    );
    let options = FitOptions {
        threads: 0,
        verbose: false,
        ..FitOptions::default()
    };
    let error = trainer.fit(&x, &y, &options).expect_err("threads = 0");
    assert!(error.to_string().contains("threads"), "{error}");
}

kiln::model! {
    /// Panics on a sample whose first value is large: one lands in the second share.
    Fragile = Sequential([
        Input(shape = (2,)),
        Lambda(
            |x: &kiln::Sample<2, 1>| {
                assert!(x[0] < 100.0, "sample too large");
                *x
            },
            backward = |_x, dy| *dy
        ),
        Dense(1),
    ]);
}

#[test]
#[should_panic(expected = "a training thread panicked")]
fn a_panic_on_a_worker_reaches_the_caller() {
    let x = [0.0, 1.0, 2.0, 3.0, 500.0, 1.0, 4.0, 5.0];
    let y = [0.0, 1.0, 0.0, 1.0];
    let mut trainer = Fragile::new(0).compile(Sgd::default(), Loss::MeanSquaredError);
    let options = FitOptions {
        batch_size: 4,
        shuffle: false,
        verbose: false,
        threads: 2,
        ..FitOptions::default()
    };
    let _ = trainer.fit(&x, &y, &options);
}

/// Plain gradient descent written outside kiln: it offers no element-wise rule, so the
/// threads share the passes and the calling thread updates whole weights.
#[derive(Clone, Default)]
struct OwnDescent {
    steps: u64,
}

impl Optimizer for OwnDescent {
    fn step_begin(&mut self) {
        self.steps += 1;
    }
    fn update(&mut self, _slot: usize, params: &mut [f32], grads: &[f32]) {
        for (w, g) in params.iter_mut().zip(grads) {
            *w -= 0.05 * g;
        }
    }
    fn iterations(&self) -> u64 {
        self.steps
    }
    fn learning_rate(&self) -> f32 {
        0.05
    }
    fn set_learning_rate(&mut self, _learning_rate: f32) -> Result<(), kiln::Error> {
        Ok(())
    }
    fn gradient_clip(&self) -> GradientClip {
        GradientClip::None
    }
    fn reset(&mut self) {
        self.steps = 0;
    }
    fn name(&self) -> &'static str {
        "own_descent"
    }
}

#[test]
fn an_optimizer_without_a_rule_updates_on_the_calling_thread() {
    let (one, ..) = train::<Plain, _>(OwnDescent::default(), 1, 16);
    let (two, ..) = train::<Plain, _>(OwnDescent::default(), 2, 16);
    assert_close(&one, &two, 1e-4, "optimizer without a rule");
}
