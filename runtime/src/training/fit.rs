//! `fit`'s loop, shared by arrays and datasets: [`run`] drives the epochs and steps of a
//! [`Source`] of batches through [`Steps`], calling the callbacks' hooks in Keras 3's order
//! and stopping on a non-finite loss, gradient, weight or optimizer state.

use super::callbacks::{Callback, LogValues, ModelAccess, Training};
use super::progress::Progress;
use super::step::{Divergence, Steps};
use super::History;
use crate::error::Error;
use crate::metrics::{self, Mean, Metric};
use alloc::borrow::Cow;
use alloc::vec;
use alloc::vec::Vec;
use rand::RngExt;

/// Where the batches of an epoch come from.
pub(super) trait Source {
    /// Steps per epoch when known (for the progress bar and the callbacks).
    fn steps(&self) -> Option<usize>;
    /// Prepares epoch `epoch` (shuffles, rewinds).
    fn start_epoch(&mut self, epoch: usize) -> Result<(), Error>;
    /// Writes the next batch into the (cleared) buffers; `false` once the epoch's data is
    /// used up. `w` stays empty for unweighted samples.
    fn next(&mut self, x: &mut Vec<f32>, y: &mut Vec<f32>, w: &mut Vec<f32>)
        -> Result<bool, Error>;
    /// Whether each batch must be checked (a dataset's; arrays are checked up front).
    fn unchecked(&self) -> bool;
}

/// The shuffling stream of `fit` on arrays: kept by the trainer between `fit` calls (and in
/// its checkpoints), so that training on continues the same sequence of orders.
#[derive(Clone, Debug)]
pub(super) struct Shuffle {
    pub seed: u64,
    pub rng: rand_chacha::ChaCha8Rng,
    /// The current order of the training samples (each epoch shuffles the previous one).
    pub order: Vec<usize>,
}

impl Shuffle {
    pub fn new(seed: u64, samples: usize) -> Shuffle {
        use rand::SeedableRng;
        Shuffle {
            seed,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            order: (0..samples).collect(),
        }
    }
}

/// In-memory samples (checked), gathered into batches in shuffled or file order.
pub(super) struct Arrays<'d> {
    pub x: &'d [f32],
    pub y: &'d [f32],
    /// One weight per training sample, or empty.
    pub weights: &'d [f32],
    pub in_len: usize,
    pub label_len: usize,
    pub samples: usize,
    pub batch_size: usize,
    /// `Some` when shuffling.
    pub shuffle: Option<&'d mut Shuffle>,
    pub position: usize,
}

impl Source for Arrays<'_> {
    fn steps(&self) -> Option<usize> {
        Some(self.samples.div_ceil(self.batch_size))
    }

    fn start_epoch(&mut self, _epoch: usize) -> Result<(), Error> {
        self.position = 0;
        if let Some(shuffle) = &mut self.shuffle {
            let order = &mut shuffle.order;
            for i in (1..order.len()).rev() {
                let j = shuffle.rng.random_range(0..=i);
                order.swap(i, j);
            }
        }
        Ok(())
    }

    fn next(
        &mut self,
        bx: &mut Vec<f32>,
        by: &mut Vec<f32>,
        bw: &mut Vec<f32>,
    ) -> Result<bool, Error> {
        let (start, end) = (
            self.position,
            (self.position + self.batch_size).min(self.samples),
        );
        if start >= end {
            return Ok(false);
        }
        self.position = end;
        let (in_len, label_len) = (self.in_len, self.label_len);
        let mut gather = |i: usize| {
            bx.extend_from_slice(&self.x[i * in_len..(i + 1) * in_len]);
            by.extend_from_slice(&self.y[i * label_len..(i + 1) * label_len]);
            if !self.weights.is_empty() {
                bw.push(self.weights[i]);
            }
        };
        match &self.shuffle {
            Some(shuffle) => shuffle.order[start..end].iter().for_each(|&i| gather(i)),
            None => (start..end).for_each(gather),
        }
        Ok(true)
    }

    fn unchecked(&self) -> bool {
        false
    }
}

/// What one `fit` call runs, besides its data.
pub(super) struct Run<'r> {
    pub epochs: usize,
    pub initial_epoch: usize,
    pub validation: Option<(&'r [f32], &'r [f32])>,
    /// Samples per batch of the validation (Keras: `validation_batch_size or batch_size`):
    /// under an output mask, each batch's loss is its own masked mean.
    pub validation_batch_size: usize,
    pub validation_freq: usize,
    pub steps_per_epoch: Option<usize>,
    pub verbose: bool,
    pub seed: u64,
    pub classes: usize,
    pub label_len: usize,
    pub compiled: &'r [(&'static str, Metric)],
}

/// Checks a batch `(x, y, sample weights)` from a source that is not checked up front.
pub(super) type CheckBatch<'c> = &'c dyn Fn(&[f32], &[f32], &[f32]) -> Result<(), Error>;

/// Batch buffers reused from step to step and call to call.
#[derive(Debug, Default)]
pub(super) struct Buffers {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub w: Vec<f32>,
    pub results: Vec<(&'static str, f32)>,
    pub logs: LogValues,
}

/// Calls `hook` on every callback with a fresh [`Training`] handle.
fn each(
    callbacks: &mut [&mut dyn Callback],
    steps: &mut dyn Steps,
    stop: &mut bool,
    run: &Run,
    steps_per_epoch: Option<usize>,
    mut hook: impl FnMut(&mut dyn Callback, &mut Training<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    for callback in callbacks.iter_mut() {
        let (model, optimizer) = steps.access();
        let mut training = Training {
            model,
            optimizer,
            stop: &mut *stop,
            metrics: run.compiled,
            epochs: run.epochs,
            steps: steps_per_epoch,
        };
        hook(&mut **callback, &mut training)?;
    }
    Ok(())
}

/// The first non-finite weight, as `fit`'s end-of-epoch check reports it.
fn non_finite_weight(model: &dyn ModelAccess) -> Option<(usize, f32)> {
    (0..model.names().len()).find_map(|index| {
        crate::error::first_non_finite(model.weight(index)).map(|(_, value)| (index, value))
    })
}

/// `fit`: the epochs of `source` through `steps`, with `callbacks`; `check` validates a
/// batch from an unchecked source. Ends, error or not, with the optimizer's
/// `finalize_variable_values` (an EMA's averages over the weights), then — without an
/// error — the callbacks' `on_train_end`, as Keras's `finally`.
pub(super) fn run(
    steps: &mut dyn Steps,
    source: &mut dyn Source,
    run: &Run,
    callbacks: &mut [&mut dyn Callback],
    buffers: &mut Buffers,
    check: CheckBatch<'_>,
) -> Result<History, Error> {
    let mut stop = false;
    let mut history = History::default();
    let result = epochs(
        steps,
        source,
        run,
        callbacks,
        buffers,
        check,
        &mut stop,
        &mut history,
    );
    if run.epochs > 0 {
        let (model, optimizer) = steps.access();
        for index in 0..model.names().len() {
            if model.trainable(index) {
                optimizer.finalize_variable_values(index, model.weight_mut(index));
            }
        }
    }
    result?;
    let steps_per_epoch = run.steps_per_epoch.or(source.steps());
    let logs = &mut buffers.logs;
    each(callbacks, steps, &mut stop, run, steps_per_epoch, |c, t| {
        c.on_train_end(logs, t)
    })?;
    Ok(history)
}

#[allow(clippy::too_many_arguments)]
fn epochs(
    steps: &mut dyn Steps,
    source: &mut dyn Source,
    run: &Run,
    callbacks: &mut [&mut dyn Callback],
    buffers: &mut Buffers,
    check: CheckBatch<'_>,
    stop: &mut bool,
    history: &mut History,
) -> Result<(), Error> {
    let Buffers {
        x: bx,
        y: by,
        w: bw,
        results,
        logs,
    } = buffers;
    let limit = run.steps_per_epoch;
    let steps_per_epoch = match (limit, source.steps()) {
        (Some(l), Some(s)) => Some(l.min(s)),
        (l, s) => l.or(s),
    };
    let classes = run.classes;
    let mut states = vec![0.0; metrics::states_len(run.compiled, classes)];
    let mut progress = Progress::new(run.verbose, run.epochs, steps_per_epoch);
    let hooks = !callbacks.is_empty();
    logs.clear();
    each(callbacks, steps, stop, run, steps_per_epoch, |c, t| {
        c.on_train_begin(logs, t)
    })?;
    for epoch in run.initial_epoch..run.epochs {
        let mut loss = Mean::new();
        // Keras's `update_state` per batch: the steps' metric states add up over the epoch.
        states.iter_mut().for_each(|v| *v = 0.0);
        logs.clear();
        each(callbacks, steps, stop, run, steps_per_epoch, |c, t| {
            c.on_epoch_begin(epoch, logs, t)
        })?;
        source.start_epoch(epoch)?;
        progress.start_epoch(epoch);
        let mut step = 0;
        loop {
            if limit.is_some_and(|l| step >= l) {
                break;
            }
            bx.clear();
            by.clear();
            bw.clear();
            if !source.next(bx, by, bw)? {
                break;
            }
            if source.unchecked() {
                check(bx, by, bw)?;
            }
            if hooks {
                logs.clear();
                each(callbacks, steps, stop, run, steps_per_epoch, |c, t| {
                    c.on_train_batch_begin(step, logs, t)
                })?;
            }
            let samples = by.len() / run.label_len.max(1);
            let step_loss = steps
                .step(bx, by, bw, run.seed)
                .map_err(|d| diverged(d, epoch, step, &*steps.access().0))?;
            loss.add_weighted(step_loss, samples as f32);
            for (total, value) in states.iter_mut().zip(steps.metric_values()) {
                *total += *value;
            }
            if hooks || progress.visible() {
                results.clear();
                metrics::push_results(run.compiled, &states, classes, results);
                progress.step(step + 1, loss.result(), results);
                logs.clear();
                logs.push("loss", loss.result());
                for &(name, value) in results.iter() {
                    logs.push(name, value);
                }
                each(callbacks, steps, stop, run, steps_per_epoch, |c, t| {
                    c.on_train_batch_end(step, logs, t)
                })?;
            }
            step += 1;
            if *stop {
                break;
            }
        }
        if step == 0 {
            return Err(Error::EmptyData {
                what: "an epoch of the dataset",
            });
        }
        // Backstop of the per-step checks: every update that overflows is refused at its
        // step (`step::Guard`), but a callback may still write a non-finite weight.
        if let Some((index, value)) = non_finite_weight(&*steps.access().0) {
            return Err(Error::Diverged {
                epoch,
                step: step - 1,
                quantity: alloc::format!("weight `{}`", steps.access().0.names()[index]),
                value,
                weights_kept: false,
            });
        }
        logs.clear();
        logs.push("loss", loss.result());
        results.clear();
        metrics::push_results(run.compiled, &states, classes, results);
        for &(name, value) in results.iter() {
            logs.push(name, value);
        }
        if let Some((vx, vy)) = run.validation {
            if (epoch + 1).is_multiple_of(run.validation_freq) {
                let mut test_logs = LogValues::new();
                each(callbacks, steps, stop, run, steps_per_epoch, |c, t| {
                    c.on_test_begin(&mut test_logs, t)
                })?;
                let validation = steps.evaluate(vx, vy, run.validation_batch_size)?;
                test_logs.push("loss", validation.loss);
                for &(name, value) in &validation.metrics {
                    test_logs.push(name, value);
                }
                each(callbacks, steps, stop, run, steps_per_epoch, |c, t| {
                    c.on_test_end(&mut test_logs, t)
                })?;
                for (name, value) in test_logs.iter() {
                    logs.push(Cow::Owned(alloc::format!("val_{name}")), value);
                }
            }
        }
        each(callbacks, steps, stop, run, steps_per_epoch, |c, t| {
            c.on_epoch_end(epoch, logs, t)
        })?;
        history.record(epoch, logs);
        progress.end_epoch(history);
        if *stop {
            break;
        }
    }
    Ok(())
}

/// [`Error::Diverged`] for a refused step.
pub(super) fn diverged(d: Divergence, epoch: usize, step: usize, model: &dyn ModelAccess) -> Error {
    let name = |weight: usize| model.names().get(weight).copied().unwrap_or("?");
    let (quantity, value) = match d {
        Divergence::Loss(value) => ("the loss".into(), value),
        Divergence::Gradient { weight, value } => {
            (alloc::format!("the gradient of `{}`", name(weight)), value)
        }
        Divergence::Weight {
            weight,
            value,
            kept,
        } => {
            return Error::Diverged {
                epoch,
                step,
                quantity: alloc::format!("weight `{}`", name(weight)),
                value,
                weights_kept: kept,
            }
        }
        Divergence::State {
            weight,
            value,
            kept,
        } => {
            let quantity = match weight {
                Some(weight) => alloc::format!("the optimizer state of `{}`", name(weight)),
                None => "the optimizer state".into(),
            };
            return Error::Diverged {
                epoch,
                step,
                quantity,
                value,
                weights_kept: kept,
            };
        }
    };
    Error::Diverged {
        epoch,
        step,
        quantity,
        value,
        weights_kept: true,
    }
}
