//! Issue 13: an update that overflows a weight or the optimizer state from finite losses and
//! gradients stops `fit` at that step with [`Error::Diverged`] naming the epoch, step and
//! weight, and the weights and optimizer state from before the step (`weights_kept`), on
//! one thread and two, through `fit`, `fit_with` and `fit_dataset`, for every optimizer.
//! Keras (`tools/oracle/update_overflow.py`) shows what the same steps do there: the
//! weights Keras has before the bad step are the ones kiln keeps, and the bad step makes
//! Keras's weights (SGD) or Adam's `v` non-finite.

mod common;

use common::{assert_close, floats, golden};
use kiln::callbacks::{LogValues, Training};
use kiln::schedules::PiecewiseConstantDecay;
use kiln::{
    batches, Adadelta, Adagrad, Adam, AdamW, Adamax, Callback, Ema, Error, FitOptions, Ftrl, Lamb,
    Lion, Loss, Model, Nadam, Optimizer, RmsProp, Sgd, Trainer,
};

kiln::model! {
    Deep = Sequential([Input(shape = (2,)), Dense(2), Dense(1)]);
    Capped = Sequential([
        Input(shape = (2,)),
        Dense(2, kernel_constraint = max_norm(2.0)),
        Dense(1),
    ]);
}

/// Three batches of two samples: the first two ordinary, the third with inputs and labels
/// of 1e10, so that its loss (about 1e20) and gradients (about 1e20) are finite but their
/// squares are not: Adam's `v` overflows. `large` false keeps the third batch ordinary.
fn data(large: bool) -> (Vec<f32>, Vec<f32>) {
    let big = if large { 1e10 } else { 1.0 };
    let x = vec![
        0.5, -0.5, 1.0, 2.0, 0.25, 1.5, -1.0, 0.5, big, big, -big, big,
    ];
    let y = vec![100.0, -50.0, 80.0, 60.0, big, -big];
    (x, y)
}

fn options(threads: usize) -> FitOptions<'static> {
    FitOptions {
        epochs: 2,
        batch_size: 2,
        shuffle: false,
        verbose: false,
        threads,
        ..FitOptions::default()
    }
}

/// SGD whose learning rate jumps to 1e38 at the third step (Keras's
/// `PiecewiseConstantDecay([1], [0.01, 1e38])`): the gradients stay finite, the update
/// `w -= g * lr` overflows.
fn exploding_sgd() -> Sgd {
    let schedule = PiecewiseConstantDecay::new(vec![1], vec![0.01, 1e38]).expect("a schedule");
    Sgd {
        schedule: Some(schedule.into()),
        ..Sgd::default()
    }
}

/// The trainer after the first two steps of `fit` with the same options (on as many
/// threads): what the refused third step must leave.
fn after_two_steps<M, O>(
    model: M,
    optimizer: O,
    x: &[f32],
    y: &[f32],
    threads: usize,
) -> Trainer<M, O>
where
    M: kiln::Trainable + Send + Sync,
    O: Optimizer,
{
    let mut reference = model.compile(optimizer, Loss::MeanSquaredError);
    let once = FitOptions {
        epochs: 1,
        ..options(threads)
    };
    reference
        .fit(&x[..8], &y[..4], &once)
        .expect("the first two steps are ordinary");
    reference
}

/// Checks `error` is the refusal of epoch 0's third step (step 2) with the weights kept,
/// naming `quantity`, and that the weights and the optimizer state are `reference`'s, bit
/// for bit.
fn assert_refused<M, O>(
    error: &Error,
    quantity: &str,
    trainer: &Trainer<M, O>,
    reference: &Trainer<M, O>,
    context: &str,
) where
    M: kiln::Trainable,
    O: Optimizer + PartialEq + core::fmt::Debug,
{
    match error {
        Error::Diverged {
            epoch: 0,
            step: 2,
            quantity: found,
            value,
            weights_kept: true,
        } => {
            assert_eq!(found, quantity, "{context}");
            assert!(!value.is_finite(), "{context}: {value}");
        }
        other => panic!("{context}: {other:?}"),
    }
    assert!(
        error.to_string().starts_with(&format!(
            "training diverged in epoch 1 at step 3: {quantity} is "
        )),
        "{context}: {error}"
    );
    assert_eq!(
        trainer.model().weights_to_bytes(),
        reference.model().weights_to_bytes(),
        "{context}: the weights from before the bad step"
    );
    assert_eq!(
        trainer.optimizer(),
        reference.optimizer(),
        "{context}: the optimizer state"
    );
}

#[test]
fn sgd_that_overflows_a_weight_keeps_the_weights_from_before_the_step() {
    let (x, y) = data(false);
    for threads in [1, 2] {
        let mut trainer = Deep::new(3).compile(exploding_sgd(), Loss::MeanSquaredError);
        let error = trainer.fit(&x, &y, &options(threads)).unwrap_err();
        let reference = after_two_steps(Deep::new(3), exploding_sgd(), &x, &y, threads);
        let context = format!("threads {threads}");
        assert_refused(
            &error,
            "weight `dense_1/kernel`",
            &trainer,
            &reference,
            &context,
        );
        // Training on from there with a sane rate works, as after any refused step.
        let mut sane = Deep::new(3).compile(Sgd::default(), Loss::MeanSquaredError);
        sane.model_mut()
            .load_weights_from_bytes(&trainer.model().weights_to_bytes())
            .expect("same model");
        sane.fit(&x, &y, &options(threads)).expect("finite steps");
    }
}

#[test]
fn adam_whose_second_moment_overflows_keeps_the_weights_and_moments() {
    // g ~ 1e20 is finite, g² is not: Keras's `v` becomes inf and the weight does not move
    // (`m * alpha / inf`); its next step would give NaN (`inf - inf`). kiln refuses the
    // step at the overflow, since the optimizer's state is no longer finite.
    let (x, y) = data(true);
    for threads in [1, 2] {
        let mut trainer = Deep::new(3).compile(Adam::default(), Loss::MeanSquaredError);
        let error = trainer.fit(&x, &y, &options(threads)).unwrap_err();
        let reference = after_two_steps(Deep::new(3), Adam::default(), &x, &y, threads);
        let context = format!("threads {threads}");
        assert_refused(
            &error,
            "the optimizer state of `dense/kernel`",
            &trainer,
            &reference,
            &context,
        );
    }
}

/// Every optimizer on the batch whose gradients are about 1e20: the step is refused with
/// everything kept, or, for an update that stays finite (Lion's sign, SGD's small rate),
/// `fit` goes on with every weight finite. Never weights written and then reported.
#[test]
fn every_optimizer_refuses_an_overflowing_update_or_stays_finite() {
    fn check<O: Optimizer + Clone + PartialEq + core::fmt::Debug>(
        optimizer: O,
        threads: usize,
    ) -> bool {
        let (x, y) = data(true);
        let name = optimizer.name();
        let mut trainer = Deep::new(5).compile(optimizer.clone(), Loss::MeanSquaredError);
        let once = FitOptions {
            epochs: 1,
            ..options(threads)
        };
        match trainer.fit(&x, &y, &once) {
            Ok(_) => {
                for name in Deep::WEIGHT_NAMES {
                    let w = trainer.model().get_weight(name).expect("a weight");
                    assert!(w.iter().all(|v| v.is_finite()), "{name}: {w:?}");
                }
                false
            }
            Err(error) => {
                let reference = after_two_steps(Deep::new(5), optimizer, &x, &y, threads);
                let quantity = match &error {
                    Error::Diverged { quantity, .. } => quantity.clone(),
                    other => panic!("{name}: {other:?}"),
                };
                assert_refused(
                    &error,
                    &quantity,
                    &trainer,
                    &reference,
                    &format!("{name}, threads {threads}"),
                );
                true
            }
        }
    }
    for threads in [1, 2] {
        let refused = [
            check(Sgd::default(), threads),
            check(
                Sgd {
                    momentum: 0.9,
                    nesterov: true,
                    ..Sgd::default()
                },
                threads,
            ),
            check(Adam::default(), threads),
            check(
                Adam {
                    amsgrad: true,
                    ..Adam::default()
                },
                threads,
            ),
            check(AdamW::default(), threads),
            check(RmsProp::default(), threads),
            check(
                RmsProp {
                    momentum: 0.5,
                    centered: true,
                    ..RmsProp::default()
                },
                threads,
            ),
            check(Adagrad::default(), threads),
            check(Nadam::default(), threads),
            check(Adamax::default(), threads),
            check(Adadelta::default(), threads),
            check(Ftrl::default(), threads),
            check(Lion::default(), threads),
            check(Lamb::default(), threads),
            check(
                Adam {
                    ema: Some(Ema::default()),
                    ..Adam::default()
                },
                threads,
            ),
        ];
        // SGD's plain and momentum steps (about 1e18), Adamax's (its infinity norm holds
        // `|g|`, not `g²`) and Lion's (a sign) stay finite; the others overflow a moment,
        // an accumulator or the weights.
        assert_eq!(
            refused,
            [
                false, false, true, true, true, true, true, true, true, false, true, true, false,
                true, true
            ],
            "threads {threads}"
        );
    }
}

#[test]
fn a_constraint_after_an_overflowing_update_is_refused_too() {
    // The constraint sees an infinite kernel: `inf * (2 / inf)` is NaN (Keras's MaxNorm
    // gives the same); the bound fails at the third step, whose checked path finds it.
    let (x, y) = data(false);
    for threads in [1, 2] {
        let mut trainer = Capped::new(3).compile(exploding_sgd(), Loss::MeanSquaredError);
        let error = trainer.fit(&x, &y, &options(threads)).unwrap_err();
        let reference = after_two_steps(Capped::new(3), exploding_sgd(), &x, &y, threads);
        assert_refused(
            &error,
            "weight `dense_1/kernel`",
            &trainer,
            &reference,
            &format!("threads {threads}"),
        );
    }
}

/// Keeps the weights seen at the start of every step (`fit_with`'s callbacks make the guard
/// measure the weights again at each step).
#[derive(Default)]
struct Before(Vec<Vec<f32>>);

impl Callback for Before {
    fn on_train_batch_begin(
        &mut self,
        _batch: usize,
        _logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.0 = training.get_weights();
        Ok(())
    }
}

#[test]
fn fit_with_and_fit_dataset_keep_the_weights_from_before_the_step() {
    let (x, y) = data(false);
    for threads in [1, 2] {
        let mut trainer = Deep::new(3).compile(exploding_sgd(), Loss::MeanSquaredError);
        let mut before = Before::default();
        let error = trainer
            .fit_with(&x, &y, &options(threads), &mut [&mut before])
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Diverged {
                    epoch: 0,
                    step: 2,
                    weights_kept: true,
                    ..
                }
            ),
            "{error:?}"
        );
        for (index, name) in Deep::WEIGHT_NAMES.iter().enumerate() {
            let kept = trainer.model().get_weight(name).expect("a weight");
            assert_eq!(kept, before.0[index], "threads {threads}: {name}");
        }

        let mut streamed = Deep::new(3).compile(exploding_sgd(), Loss::MeanSquaredError);
        let (sx, sy) = (x.clone(), y.clone());
        let mut dataset = batches(move |_epoch| {
            (0..3).map({
                let (sx, sy) = (sx.clone(), sy.clone());
                move |b| {
                    Ok::<_, String>((sx[b * 4..b * 4 + 4].to_vec(), sy[b * 2..b * 2 + 2].to_vec()))
                }
            })
        });
        let error = streamed
            .fit_dataset(&mut dataset, &options(threads), &mut [])
            .unwrap_err();
        let reference = after_two_steps(Deep::new(3), exploding_sgd(), &x, &y, threads);
        assert_refused(
            &error,
            "weight `dense_1/kernel`",
            &streamed,
            &reference,
            &format!("dataset, threads {threads}"),
        );
    }
}

#[test]
fn train_on_batch_applies_the_update_as_keras_does() {
    // Keras's `train_on_batch` has no `TerminateOnNaN`: it writes whatever the update
    // gives. kiln's does the same (only `fit` refuses steps).
    let (x, y) = data(false);
    let mut trainer = Deep::new(3).compile(exploding_sgd(), Loss::MeanSquaredError);
    for b in 0..3 {
        trainer
            .train_on_batch(&x[b * 4..b * 4 + 4], &y[b * 2..b * 2 + 2])
            .expect("train_on_batch never refuses");
    }
    let kernel = trainer
        .model()
        .get_weight("dense_1/kernel")
        .expect("a weight");
    assert!(kernel.iter().any(|v| !v.is_finite()), "{kernel:?}");
}

/// Keras's side of the two scenarios, from `tools/oracle/update_overflow.py`: its weights
/// after the two good steps are what kiln keeps (to the optimizers' documented rounding
/// differences), and its third step makes SGD's weights and Adam's `v` non-finite (Adam's
/// weights then at the step after).
#[test]
fn keras_diverges_at_the_same_step_and_had_the_kept_weights() {
    let golden = golden("update_overflow");
    for case in golden["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("a name");
        let (x, y) = data(case["large"].as_bool().expect("large"));
        let mut model = Deep::new(0);
        for weight in Deep::WEIGHT_NAMES {
            model
                .set_weight(weight, &floats(&case["initial"][weight]))
                .expect("Keras's initial weights");
        }
        let (error, kept) = match name {
            "sgd" => {
                let mut trainer = model.compile(exploding_sgd(), Loss::MeanSquaredError);
                (
                    trainer.fit(&x, &y, &options(1)).unwrap_err(),
                    weights(trainer.model()),
                )
            }
            _ => {
                let mut trainer = model.compile(Adam::default(), Loss::MeanSquaredError);
                (
                    trainer.fit(&x, &y, &options(1)).unwrap_err(),
                    weights(trainer.model()),
                )
            }
        };
        assert!(
            matches!(
                error,
                Error::Diverged {
                    epoch: 0,
                    step: 2,
                    weights_kept: true,
                    ..
                }
            ),
            "{name}: {error:?}"
        );
        for (index, weight) in Deep::WEIGHT_NAMES.iter().enumerate() {
            let expected = floats(&case["before"][weight]);
            assert_close(
                &format!("{name}: {weight} kept"),
                &kept[index],
                &expected,
                1e-4,
                1e-6,
            );
        }
        // What Keras's third step did: SGD's weights overflow; Adam's weights stay finite
        // (the step is `m * alpha / inf`, 0) while both kernels' `v` are infinite.
        let (weights_finite, state_finite) = (
            case["after_weights_finite"].as_bool().expect("a flag"),
            case["after_state_finite"].as_bool().expect("a flag"),
        );
        let next_finite = case["next_step_weights_finite"].as_bool().expect("a flag");
        match name {
            "sgd" => assert!(!weights_finite && state_finite, "{name}"),
            // ... and the next ordinary step writes NaN weights (`inf - inf` in `v`).
            _ => assert!(weights_finite && !state_finite && !next_finite, "{name}"),
        }
    }
}

fn weights(model: &Deep) -> Vec<Vec<f32>> {
    Deep::WEIGHT_NAMES
        .iter()
        .map(|name| model.get_weight(name).expect("a weight"))
        .collect()
}

/// An optimizer from outside kiln: Adam's steps, without the rule the guard bounds (so every
/// step takes the checked path: copy, update, scan), and with or without its state shown.
#[derive(Clone, Debug, PartialEq)]
struct Outside {
    adam: Adam,
    shows_state: bool,
}

impl Optimizer for Outside {
    fn step_begin(&mut self) {
        self.adam.step_begin();
    }
    fn update(&mut self, slot: usize, params: &mut [f32], grads: &[f32]) {
        self.adam.update(slot, params, grads);
    }
    fn iterations(&self) -> u64 {
        self.adam.iterations()
    }
    fn learning_rate(&self) -> f32 {
        self.adam.learning_rate()
    }
    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), Error> {
        self.adam.set_learning_rate(learning_rate)
    }
    fn gradient_clip(&self) -> kiln::GradientClip {
        self.adam.gradient_clip()
    }
    fn reset(&mut self) {
        self.adam.reset();
    }
    fn name(&self) -> &'static str {
        "outside"
    }
    fn visit_state(&mut self, visit: &mut dyn FnMut(&str, kiln::optimizers::StateRef<'_>)) -> bool {
        self.shows_state && self.adam.visit_state(visit)
    }
}

#[test]
fn the_checked_path_gives_the_same_bits_as_the_bounded_one() {
    // Ordinary data: every step of Adam is proven finite by the bound (nothing copied);
    // the same steps through `Outside` are all copied and checked. Same weights, bit for
    // bit, on one thread and two.
    let (x, y) = data(false);
    for threads in [1, 2] {
        let mut bounded = Deep::new(4).compile(Adam::default(), Loss::MeanSquaredError);
        bounded.fit(&x, &y, &options(threads)).expect("finite");
        let outside = Outside {
            adam: Adam::default(),
            shows_state: true,
        };
        let mut checked = Deep::new(4).compile(outside, Loss::MeanSquaredError);
        checked.fit(&x, &y, &options(threads)).expect("finite");
        assert_eq!(
            bounded.model().weights_to_bytes(),
            checked.model().weights_to_bytes(),
            "threads {threads}"
        );
        assert_eq!(
            bounded.optimizer(),
            &checked.optimizer().adam,
            "threads {threads}"
        );
        // The same with a constraint after the update (bounded too: `max_norm` only
        // shrinks a vector).
        let mut bounded = Capped::new(4).compile(Adam::default(), Loss::MeanSquaredError);
        bounded.fit(&x, &y, &options(threads)).expect("finite");
        let outside = Outside {
            adam: Adam::default(),
            shows_state: true,
        };
        let mut checked = Capped::new(4).compile(outside, Loss::MeanSquaredError);
        checked.fit(&x, &y, &options(threads)).expect("finite");
        assert_eq!(
            bounded.model().weights_to_bytes(),
            checked.model().weights_to_bytes(),
            "max_norm, threads {threads}"
        );
    }
}

#[test]
fn an_optimizer_that_hides_its_state_gets_its_weights_back_but_not_its_state() {
    let (x, y) = data(true);
    // Shown, its state is checked: Adam's `v` overflowing at step 2 is refused, everything
    // kept, as for kiln's own optimizers.
    let shown = Outside {
        adam: Adam::default(),
        shows_state: true,
    };
    let mut trainer = Deep::new(3).compile(shown.clone(), Loss::MeanSquaredError);
    let error = trainer.fit(&x, &y, &options(1)).unwrap_err();
    let reference = after_two_steps(Deep::new(3), shown, &x, &y, 1);
    assert_refused(
        &error,
        "the optimizer state of `dense/kernel`",
        &trainer,
        &reference,
        "shown",
    );
    // Hidden, only the weights are checked: the infinite `v` passes unseen (the weights
    // stay finite: Adam's step is `m * alpha / inf`), the next step's NaN weights are
    // refused and put back, and the error says the state was not kept.
    let hidden = Outside {
        adam: Adam::default(),
        shows_state: false,
    };
    let mut trainer = Deep::new(3).compile(hidden, Loss::MeanSquaredError);
    match trainer.fit(&x, &y, &options(1)).unwrap_err() {
        Error::Diverged {
            quantity,
            weights_kept: false,
            ..
        } => assert!(quantity.starts_with("weight `"), "{quantity}"),
        other => panic!("{other:?}"),
    }
    for name in Deep::WEIGHT_NAMES {
        let w = trainer.model().get_weight(name).expect("a weight");
        assert!(w.iter().all(|v| v.is_finite()), "{name}: {w:?}");
    }
}
