//! One training step in two pieces: the forward and backward pass over a batch
//! ([`run_pass`]) and the weight update ([`apply_update`]); [`Steps`] is how `fit` runs them.

use super::callbacks::ModelAccess;
use super::{Gradients, Logs, Trainable};
use crate::activations::Activation;
use crate::constraints::Constraint;
use crate::error::Error;
use crate::losses::Loss;
use crate::metrics::{self, Mean, Metric};
use crate::model::Pass;
use crate::optimizers::{
    bound_of, magnitude, GradientClip, Magnitudes, Optimizer, StateRef, LIMIT, NON_FINITE,
};
use crate::pool::Pool;
use crate::regularizers::Regularizer;
use alloc::vec::Vec;

/// What a training step's pass produced, and the buffers it reuses from step to step.
#[derive(Debug, Clone)]
pub(super) struct StepState {
    /// Weight gradients of the mean loss over the batch.
    pub grads: Gradients,
    /// Tensor storage lent to each pass.
    pub pool: Pool,
    /// Mean loss over the batch, without regularization.
    pub loss: f32,
    /// Activity-regularization loss of the pass (Keras divides it by the batch size).
    pub activity_loss: f32,
    /// The compiled metrics' states over the batch, side by side
    /// (`metrics::update_states`): additive, so shares and batches combine by adding.
    pub metric_values: Vec<f32>,
}

impl StepState {
    pub fn for_model<M: Trainable>() -> StepState {
        StepState {
            grads: Gradients::for_model::<M>(),
            pool: Pool::default(),
            loss: 0.0,
            activity_loss: 0.0,
            metric_values: Vec::new(),
        }
    }
}

/// The compiled loss and metrics.
#[derive(Clone, Copy)]
pub(super) struct Objective<'m> {
    pub loss: Loss,
    pub metrics: &'m [(&'static str, Metric)],
    /// Output classes (the last axis), for losses and metrics over class scores.
    pub classes: usize,
    /// Whether the loss gradient fuses with the output activation (softmax or sigmoid with
    /// a cross-entropy on probabilities): exact and stable where the separate chain is not.
    pub fuse: bool,
}

impl<'m> Objective<'m> {
    pub fn new<M: Trainable>(loss: Loss, metrics: &'m [(&'static str, Metric)]) -> Self {
        let fuse = matches!(
            (loss, M::OUTPUT_ACTIVATION),
            (
                Loss::CategoricalCrossentropy { from_logits: false }
                    | Loss::SparseCategoricalCrossentropy { from_logits: false },
                Some(Activation::Softmax)
            ) | (
                Loss::BinaryCrossentropy { from_logits: false },
                Some(Activation::Sigmoid)
            )
        );
        Objective {
            loss,
            metrics,
            classes: super::output_classes::<M>(),
            fuse,
        }
    }

    /// Keras's `evaluate` of `model` on checked data, in batches of `batch_size` samples:
    /// loss (with regularization) and metrics in inference mode. As in Keras, each batch's
    /// loss is its own (under an output mask, `total / valid` counted within the batch: see
    /// [`RowWeights`]) and the loss is their mean weighted by the batches' sizes; the
    /// metrics accumulate over the batches, masked rows left out (Keras's test step gives
    /// the metrics the outputs with their mask, where its train step on JAX does not).
    pub fn evaluate<M: Trainable>(
        &self,
        model: &M,
        x: &[f32],
        y: &[f32],
        batch_size: usize,
    ) -> Result<Logs, Error> {
        let mut pass = Pass::inference();
        let (pred, mask) = model.__forward_batch(x, &mut pass);
        let samples = x.len() / M::INPUT_LEN.max(1);
        let (out_len, label_len) = (
            M::OUTPUT_LEN,
            self.loss.y_true_len(M::OUTPUT_LEN, self.classes),
        );
        let mask_len = match &mask {
            Some(m) => m.len() / samples.max(1),
            None => 0,
        };
        let mut data_loss = Mean::new();
        let mut states = alloc::vec![0.0; metrics::states_len(self.metrics, self.classes)];
        let batch_size = batch_size.max(1);
        for start in (0..samples).step_by(batch_size) {
            let end = (start + batch_size).min(samples);
            let p = &pred[start * out_len..end * out_len];
            let t = &y[start * label_len..end * label_len];
            let m = mask
                .as_deref()
                .map(|m| &m[start * mask_len..end * mask_len]);
            let rows = p.len() / self.classes.max(1);
            let value = match RowWeights::new(&[], rows, m, &whole_batch) {
                Some(weights) => weights.loss(self.loss, p, t, self.classes),
                None => self.loss.value(p, t, self.classes),
            };
            data_loss.add_weighted(value, (end - start) as f32);
            metrics::update_states(self.metrics, p, t, self.classes, m, &mut states);
        }
        let mut loss = data_loss.result() + pass.activity_loss;
        for (index, regularizer) in M::REGULARIZERS.iter().enumerate() {
            if let Some(regularizer) = regularizer {
                loss += regularizer.loss(model.__weight(index));
            }
        }
        let mut logs = Logs {
            loss,
            metrics: Vec::new(),
        };
        metrics::push_results(self.metrics, &states, self.classes, &mut logs.metrics);
        Ok(logs)
    }
}

/// Where a pass sits: the run's seed, the step number, and which share of a batch split
/// across threads it is (0 on one thread).
#[derive(Clone, Copy, Debug)]
pub(super) struct Position {
    pub seed: u64,
    pub step: u64,
    pub part: u64,
}

/// Turns a pass's count of output rows and of unmasked ones into the whole batch's, for
/// [`RowWeights`]: the identity on one thread; the threaded trainer sums its shares'.
pub(super) type BatchRows<'c> = &'c dyn Fn(usize, usize) -> (usize, usize);

/// [`BatchRows`] of a pass over the whole batch.
pub(super) fn whole_batch(rows: usize, valid: usize) -> (usize, usize) {
    (rows, valid)
}

/// The forward and backward pass of `model` over the samples `x`, `y` (checked lengths)
/// into `state`: its gradients, mean loss, activity loss and metrics. `weights` holds one
/// sample weight per sample, or nothing for none; with them and the output's Keras mask,
/// each output row's loss is weighted as [`RowWeights`] says, the mask's `total / valid`
/// counted over the rows `batch_rows` gives (the whole batch when the pass is a share of
/// it). Allocation-free once the state's pool holds the step's tensors.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_pass<M: Trainable>(
    model: &M,
    objective: Objective,
    x: &[f32],
    y: &[f32],
    weights: &[f32],
    batch_rows: BatchRows<'_>,
    position: Position,
    state: &mut StepState,
) {
    let Objective {
        loss,
        metrics,
        classes,
        fuse,
    } = objective;
    let metric_values = &mut state.metric_values;
    metric_values.clear();
    // Within capacity after the first step: no allocation.
    metric_values.resize(metrics::states_len(metrics, classes), 0.0);
    let mut loss_value = 0.0;
    let mut head = |y_pred: &[f32], mask: Option<&[bool]>, dy: &mut [f32]| -> bool {
        // Keras 3 on JAX updates the training metrics with the outputs that
        // `jax.value_and_grad` returns, which no longer carry the mask: they count masked
        // rows (`evaluate`'s do not; see `Objective::evaluate`).
        metrics::update_states(metrics, y_pred, y, classes, None, metric_values);
        let fused = fuse && loss.fused_gradient(y_pred, y, classes, dy);
        if !fused {
            loss.gradient(y_pred, y, classes, dy);
        }
        match RowWeights::new(weights, y_pred.len() / classes.max(1), mask, batch_rows) {
            None => loss_value = loss.value(y_pred, y, classes),
            Some(row_weights) => {
                loss_value = row_weights.loss(loss, y_pred, y, classes);
                row_weights.scale_gradient(dy, classes);
            }
        }
        fused
    };
    let mut pass = Pass {
        training: true,
        activity_loss: 0.0,
        seed: position.seed,
        step: position.step,
        pool: core::mem::take(&mut state.pool),
        part: position.part,
    };
    state.grads.zero();
    model.__train_batch_with_mask(x, &mut pass, &mut head, &mut state.grads);
    state.grads.finish();
    state.pool = core::mem::take(&mut pass.pool);
    state.loss = loss_value;
    state.activity_loss = pass.activity_loss;
}

/// Keras's weight of each output row in the loss: the sample weight and the output's
/// Keras mask merged as `losses/loss.py` merges them (`apply_mask`, then
/// `reduce_weighted_values` with `"sum_over_batch_size"`). A row weighs its sample's weight
/// (1 without `sample_weight`; a sample with several output rows, a sequence, weights each
/// of them, as Keras does with weights shaped `(batch, 1)`), times, under a mask, `total /
/// valid` when the row is unmasked and 0 when it is masked, `total` and `valid` counting
/// the rows of the whole batch. The batch loss is the sum of the weighted row losses over
/// `total`: `sum(loss * w) / valid` under a mask, `sum(loss * w) / total` without — not a
/// mean by the sum of the weights. A batch whose every row is masked has loss 0 and no
/// gradient (Keras's `divide_no_nan(total, valid)` is 0).
///
/// Row losses are [`Loss::weighted_batch_sum`]'s, with Keras's per-batch decisions (hinge
/// labels) taken over the pass's rows.
#[derive(Clone, Copy, Debug)]
pub(super) struct RowWeights<'a> {
    /// One weight per sample, or empty for none.
    samples: &'a [f32],
    rows_per_sample: usize,
    /// One value per row, true where the row counts.
    mask: Option<&'a [bool]>,
    /// `total / valid` over the batch (0 when nothing is valid).
    unmasked: f32,
}

impl<'a> RowWeights<'a> {
    /// The weights of a pass over `rows` output rows, or `None` when every row weighs 1 (no
    /// sample weights, no mask). `batch_rows` turns the pass's counts into the batch's. A
    /// mask that is not one value per row (a `TimeDistributed` layer that changed the
    /// positions under it, where Keras's broadcast fails) is not applied.
    pub fn new(
        samples: &'a [f32],
        rows: usize,
        mask: Option<&'a [bool]>,
        batch_rows: BatchRows<'_>,
    ) -> Option<RowWeights<'a>> {
        let mask = mask.filter(|m| m.len() == rows);
        if (samples.is_empty() && mask.is_none()) || rows == 0 {
            return None;
        }
        let unmasked = match mask {
            Some(mask) => {
                let (total, valid) = batch_rows(rows, mask.iter().filter(|&&m| m).count());
                if valid == 0 {
                    0.0
                } else {
                    total as f32 / valid as f32
                }
            }
            None => 1.0,
        };
        Some(RowWeights {
            samples,
            rows_per_sample: if samples.is_empty() {
                rows
            } else {
                (rows / samples.len()).max(1)
            },
            mask,
            unmasked,
        })
    }

    /// Row `row`'s weight.
    fn at(&self, row: usize) -> f32 {
        let masked = self.mask.is_some_and(|m| !m[row]);
        if masked {
            return 0.0;
        }
        match self.samples.get(row / self.rows_per_sample) {
            Some(&w) if self.mask.is_some() => w * self.unmasked,
            Some(&w) => w,
            None => self.unmasked,
        }
    }

    /// The pass's loss: the weighted row losses summed, over the pass's rows.
    pub fn loss(&self, loss: Loss, y_pred: &[f32], y_true: &[f32], classes: usize) -> f32 {
        let (sum, rows) = loss.weighted_batch_sum(y_pred, y_true, classes, |r| self.at(r));
        if rows == 0 {
            0.0
        } else {
            sum / rows as f32
        }
    }

    /// Scales the mean loss's gradient `dy` (rows of `classes` values) row by row into the
    /// weighted loss's. The loss is linear in each row's term, and softmax and sigmoid act
    /// within a row: the fused gradient scales the same way.
    pub fn scale_gradient(&self, dy: &mut [f32], classes: usize) {
        for (r, row) in dy.chunks_exact_mut(classes.max(1)).enumerate() {
            let w = self.at(r);
            row.iter_mut().for_each(|g| *g *= w);
        }
    }
}

/// Why a step was refused: a non-finite loss or gradient (found before the update), or an
/// update that left a weight or the optimizer state non-finite (found after it, and undone
/// when `kept`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Divergence {
    /// The batch's loss (with the activity-regularization term).
    Loss(f32),
    /// Weight `weight`'s gradient (or, for a moving average, its batch statistic).
    Gradient {
        /// The weight's index in `Model::WEIGHT_NAMES`.
        weight: usize,
        /// The first non-finite value.
        value: f32,
    },
    /// Weight `weight` after the update.
    Weight {
        /// The weight's index in `Model::WEIGHT_NAMES`.
        weight: usize,
        /// The first non-finite value.
        value: f32,
        /// Whether the weights and the optimizer state are back to those before the step.
        kept: bool,
    },
    /// The optimizer's state of weight `weight` (its moments, accumulators, moving
    /// average) after the update; `None` when the optimizer's names for its state do not
    /// say which weight.
    State {
        /// The weight's index in `Model::WEIGHT_NAMES`.
        weight: Option<usize>,
        /// The first non-finite value.
        value: f32,
        /// Whether the weights and the optimizer state are back to those before the step.
        kept: bool,
    },
}

/// The first non-finite value among a pass's loss and gradients, as an error; otherwise
/// the largest gradient magnitude of the weights `trainable` says the optimizer updates
/// (as [`Magnitudes`] bits), for [`Guard`]. One pass over the gradients, as fast as a
/// finiteness test alone (an integer maximum of the bits vectorises).
pub(super) fn scan_gradients(
    state: &StepState,
    trainable: impl Fn(usize) -> bool,
) -> Result<u32, Divergence> {
    let loss = state.loss + state.activity_loss;
    if !loss.is_finite() {
        return Err(Divergence::Loss(loss));
    }
    let slots = &state.grads.slots;
    // On the CPU's widest vectors: with SSE2's emulated integer maximum the scan took a
    // quarter longer than the finiteness test it replaced.
    let (top, bad) = crate::isa::dispatch(|| {
        let mut top = 0;
        for (weight, g) in slots.iter().enumerate() {
            let m = magnitude(g);
            if m >= NON_FINITE {
                return (top, Some(weight));
            }
            if trainable(weight) {
                top = top.max(m);
            }
        }
        (top, None)
    });
    match bad {
        None => Ok(top),
        Some(weight) => {
            let value = crate::error::first_non_finite(&slots[weight]).map_or(f32::NAN, |(_, v)| v);
            Err(Divergence::Gradient { weight, value })
        }
    }
}

/// `fit`'s guard against an update that overflows: a step whose update would leave a
/// weight or a value of the optimizer state NaN or infinite (SGD with a huge learning
/// rate, Adam's `g²` past `f32::MAX` in `v`, a weight near `f32::MAX`, a constraint whose
/// norm overflows) is refused with the weights and the optimizer state from before it.
///
/// # Why a bound, and a copy only when the bound fails
/// Keeping the old values is what costs: a copy of the weights and the optimizer state
/// before every step (Adam: three values per weight), or computing every new value twice
/// (once to check, once to write), costs about as much as the update itself (the copy
/// and the check made a digits epoch with Adadelta 12 % slower before it had a bound), and
/// even folding the new
/// values' magnitudes into the update loop made Adam's 1.23× slower (BENCHMARKS.md,
/// "Reliability"). So each step first tries to *prove* that no value can overflow, without
/// touching the values:
/// - the largest gradient magnitude comes from the finiteness scan `fit` already runs
///   ([`scan_gradients`]), widened by the regularizers' gradients and the clipping;
/// - bounds on the weights and on each state part ([`Magnitudes`]) come from the previous
///   step's bound, carried over; they are measured (one read of the weights and the state)
///   only when unknown or too wide: at the first step of a `fit` call, after a callback
///   (which may write weights), and when the carried bound no longer proves the step;
/// - the optimizer's rule turns them into a bound on every intermediate value of the step
///   (`ElementwiseRule::keeps_finite`, for SGD, Adam, AdamW, RMSprop without `centered`,
///   Adagrad, Adadelta, Nadam, Adamax and Lion): below 1e37 nothing overflows, and those
///   rules divide only by divisors bounded away from 0 and take roots of values kept
///   non-negative, so nothing is NaN either; constraints after the update get a bound of
///   their own ([`constrained`]).
///
/// Then the step updates exactly as before, with nothing saved or checked. When the bound
/// fails even on measured values (a huge learning rate or gradient, a weight near
/// `f32::MAX`) or cannot be had (Ftrl, centered RMSprop, Lamb, an `Ema`, moving
/// averages, gradient clipping by a non-finite norm, an optimizer from outside kiln), the
/// step takes the checked path: it copies the weights and the optimizer state (through
/// `Optimizer::visit_state`), updates, scans every weight and state value, and on a
/// non-finite one puts the copies back. Both paths run the same update, so the weights are
/// the same bits whichever runs.
#[derive(Debug, Default)]
pub(super) struct Guard {
    /// Bounds on the magnitudes after the last step, while nothing else has written the
    /// weights or the optimizer state since; and whether they were measured (not carried).
    tracked: Option<(Magnitudes, bool)>,
    /// The checked path's copies: every weight back to back, ...
    weights: Vec<f32>,
    /// ... and the optimizer state as `visit_state` shows it: its buffers back to back,
    /// each buffer's length, its counts and its scalars, in the order shown.
    values: Vec<f32>,
    lens: Vec<usize>,
    counts: Vec<u64>,
    scalars: Vec<f32>,
    /// Whether the optimizer showed its state (`visit_state` returned true).
    state_copied: bool,
}

impl Guard {
    /// Something outside the update may have written the weights or the optimizer state
    /// (a callback): the next step measures them again.
    pub fn forget(&mut self) {
        self.tracked = None;
    }

    /// Whether the next step provably leaves every value finite (see the type's docs),
    /// asked before the optimizer's `step_begin`; `grad` is [`scan_gradients`]'s maximum.
    /// When it does, the bounds after the step are kept for the next one.
    pub fn proves_finite<M: Trainable, O: Optimizer>(
        &mut self,
        model: &M,
        optimizer: &mut O,
        grad: u32,
    ) -> bool {
        let tracked = self.tracked.take();
        if M::UPDATES.iter().any(|u| !u.is_trainable()) {
            return false;
        }
        let Some(g) = gradient_bound::<M>(optimizer.gradient_clip(), grad, tracked) else {
            // Needs the weights' bound: measured below, then tried again.
            return self.measured(model, optimizer, grad);
        };
        let Some((rule, _)) = optimizer.next_elementwise() else {
            return false;
        };
        match tracked {
            Some((before, measured)) => {
                match rule.keeps_finite(&before, g).and_then(constrained::<M>) {
                    Some(after) => {
                        self.tracked = Some((after, false));
                        true
                    }
                    None if !measured => self.measured(model, optimizer, grad),
                    None => false,
                }
            }
            None => self.measured(model, optimizer, grad),
        }
    }

    /// [`Guard::proves_finite`] from bounds measured on the weights and the state.
    fn measured<M: Trainable, O: Optimizer>(
        &mut self,
        model: &M,
        optimizer: &mut O,
        grad: u32,
    ) -> bool {
        let Some((rule, slots)) = optimizer.next_elementwise() else {
            return false;
        };
        let weights = crate::isa::dispatch(|| {
            (0..M::WEIGHT_NAMES.len()).fold(0, |top, i| top.max(magnitude(model.__weight(i))))
        });
        let before = Magnitudes {
            weights: bound_of(weights),
            parts: slots.magnitudes(&rule),
        };
        let clip = optimizer.gradient_clip();
        let Some(g) = gradient_bound::<M>(clip, grad, Some((before, true))) else {
            return false;
        };
        let Some((rule, _)) = optimizer.next_elementwise() else {
            return false;
        };
        match rule.keeps_finite(&before, g).and_then(constrained::<M>) {
            Some(after) => {
                self.tracked = Some((after, false));
                true
            }
            None => false,
        }
    }

    /// The checked path, before the step: copies the weights and the optimizer state.
    pub fn save<M: Trainable, O: Optimizer>(&mut self, model: &M, optimizer: &mut O) {
        self.tracked = None;
        self.weights.clear();
        for index in 0..M::WEIGHT_NAMES.len() {
            self.weights.extend_from_slice(model.__weight(index));
        }
        let (values, lens, counts, scalars) = (
            &mut self.values,
            &mut self.lens,
            &mut self.counts,
            &mut self.scalars,
        );
        values.clear();
        lens.clear();
        counts.clear();
        scalars.clear();
        self.state_copied = optimizer.visit_state(&mut |_, state| match state {
            StateRef::Values(v) => {
                lens.push(v.len());
                values.extend_from_slice(v);
            }
            StateRef::Count(c) => counts.push(*c),
            StateRef::Scalar(s) => scalars.push(*s),
        });
    }

    /// The checked path, after the step: the first non-finite weight, else the first
    /// non-finite value of the optimizer state; on one, the copies go back.
    pub fn check<M: Trainable, O: Optimizer>(
        &mut self,
        model: &mut M,
        optimizer: &mut O,
    ) -> Result<(), Divergence> {
        let kept = self.state_copied;
        let mut bad = (0..M::WEIGHT_NAMES.len()).find_map(|weight| {
            first_bad(model.__weight(weight)).map(|value| Divergence::Weight {
                weight,
                value,
                kept,
            })
        });
        if bad.is_none() {
            optimizer.visit_state(&mut |name, state| {
                if bad.is_some() {
                    return;
                }
                if let StateRef::Values(v) = state {
                    if let Some(value) = first_bad(v) {
                        // kiln's optimizers name a weight's state `<what>/<slot>`.
                        let weight = name.rsplit('/').next().and_then(|s| s.parse().ok());
                        bad = Some(Divergence::State {
                            weight: weight.filter(|&w| w < M::WEIGHT_NAMES.len()),
                            value,
                            kept,
                        });
                    }
                }
            });
        }
        match bad {
            None => Ok(()),
            Some(bad) => {
                self.restore(model, optimizer);
                Err(bad)
            }
        }
    }

    /// Puts the copies of [`Guard::save`] back.
    fn restore<M: Trainable, O: Optimizer>(&mut self, model: &mut M, optimizer: &mut O) {
        let mut offset = 0;
        for index in 0..M::WEIGHT_NAMES.len() {
            let weight = model.__weight_mut(index);
            let len = weight.len();
            if let Some(old) = self.weights.get(offset..offset + len) {
                weight.copy_from_slice(old);
            }
            offset += len;
        }
        if !self.state_copied {
            return;
        }
        let (mut buffer, mut count, mut scalar, mut offset) = (0, 0, 0, 0);
        let (values, lens, counts, scalars) =
            (&self.values, &self.lens, &self.counts, &self.scalars);
        optimizer.visit_state(&mut |_, state| match state {
            StateRef::Values(v) => {
                let len = lens.get(buffer).copied().unwrap_or(0);
                v.clear();
                v.extend_from_slice(values.get(offset..offset + len).unwrap_or(&[]));
                offset += len;
                buffer += 1;
            }
            StateRef::Count(c) => {
                if let Some(&old) = counts.get(count) {
                    *c = old;
                }
                count += 1;
            }
            StateRef::Scalar(s) => {
                if let Some(&old) = scalars.get(scalar) {
                    *s = old;
                }
                scalar += 1;
            }
        });
    }
}

/// The bounds after the constraints that follow the update, from `after`, the bounds after
/// the update: `None` unless the constraints provably give finite values. Each constraint
/// scales a vector by a factor of its norm `n`, a sum of squares within the weight's length
/// times `w²`; with that sum finite, `|w_i| <= n` keeps each result within: `|w|` for
/// `non_neg` and `max_norm` (factor `clip(n, 0, max) / (eps + n)`, at most 1, or `|max|`
/// for a negative `max`), 1 for `unit_norm`, and for `min_max_norm` (`desired / (eps +
/// n)`, `desired = rate * clip(n, min, max) + (1 - rate) * n`) `|rate| * max(|w|, |min|,
/// |max|) + |1 - rate| * |w|`.
fn constrained<M: Trainable>(after: Magnitudes) -> Option<Magnitudes> {
    let mut widest = after.weights;
    for (index, constraint) in M::CONSTRAINTS.iter().enumerate() {
        if let Some(constraint) = constraint {
            let len: usize = M::WEIGHT_SHAPES[index].iter().product();
            widest = widest.max(constraint_bound(*constraint, len, after.weights)?);
        }
    }
    // The scaling rounds twice more (the factor, the product).
    Some(Magnitudes {
        weights: widest * (1.0 + 1e-6),
        ..after
    })
}

/// [`constrained`] for one constraint on a weight of `len` values within `w`: the bound on
/// its values after it, unless it may not be finite.
fn constraint_bound(constraint: Constraint, len: usize, w: f64) -> Option<f64> {
    // Every norm's sum of squares must be finite.
    let squares = w * w * (len as f64);
    // The factor's numerator over `eps` (its largest value, at `n = 0`) must be finite.
    let (bound, numerator) = match constraint {
        Constraint::NonNeg => (w, 0.0),
        Constraint::UnitNorm { .. } => (1.0, 1.0),
        Constraint::MaxNorm { max_value, .. } => {
            let max = f64::from(max_value).abs();
            (w.max(max), max.max(w))
        }
        Constraint::MinMaxNorm {
            min_value,
            max_value,
            rate,
            ..
        } => {
            let ends = f64::from(min_value).abs().max(f64::from(max_value).abs());
            let keep = f64::from(1.0 - rate).abs();
            let rate = f64::from(rate).abs();
            let bound = rate * w.max(ends) + keep * w;
            (bound, bound)
        }
    };
    let finite = squares < LIMIT && numerator / f64::from(CONSTRAINT_EPSILON) < LIMIT;
    (finite && bound < LIMIT).then_some(bound)
}

/// Keras's `backend.epsilon()`, which the constraints add to each norm.
const CONSTRAINT_EPSILON: f32 = 1e-7;

/// The first non-finite value of `values`, if any: a scan on the CPU's widest vectors,
/// then a search only when it finds one.
fn first_bad(values: &[f32]) -> Option<f32> {
    if crate::isa::dispatch(|| magnitude(values)) < NON_FINITE {
        return None;
    }
    crate::error::first_non_finite(values).map(|(_, value)| value)
}

/// A bound on the gradients the optimizer will see, from `grad` (the bits of the largest
/// gradient magnitude of the pass) and, when regularizers add theirs, the weights' bound
/// in `tracked` (`None` then without it). Clipping by value only shrinks a gradient; by
/// norm it computes `g * c / max(norm, c)`, and by global norm it makes every gradient
/// NaN when the sum of squares overflows.
fn gradient_bound<M: Trainable>(
    clip: GradientClip,
    grad: u32,
    tracked: Option<(Magnitudes, bool)>,
) -> Option<f64> {
    // The slack covers the roundings between the scan and the optimizer: the sum of the
    // shares' gradients on several threads (weights summing to 1 up to rounding) and the
    // regularizers' additions.
    let mut g = bound_of(grad) * (1.0 + 1e-5);
    if M::REGULARIZERS.iter().any(Option::is_some) {
        let w = tracked?.0.weights;
        let mut widest = 0.0f64;
        for regularizer in M::REGULARIZERS.iter().flatten() {
            // `g += l1 * sign(w)`, `g += l2 * 2 * w`.
            let (l1, l2) = match *regularizer {
                Regularizer::L1(l1) => (l1, 0.0),
                Regularizer::L2(l2) => (0.0, l2),
                Regularizer::L1L2 { l1, l2 } => (l1, l2),
            };
            widest = widest.max(f64::from(l1).abs() + 2.0 * f64::from(l2).abs() * w);
        }
        g += widest;
    }
    let values: usize = M::WEIGHT_SHAPES
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum();
    let clipped = match clip {
        GradientClip::None | GradientClip::Value(_) => true,
        GradientClip::Norm(c) => c.is_finite() && g * f64::from(c).abs() < LIMIT,
        GradientClip::GlobalNorm(c) => c.is_finite() && g * g * (values as f64) < LIMIT,
    };
    // Also `None` for a NaN bound (a NaN regularization factor).
    (clipped && g < LIMIT).then_some(g)
}

/// Keras's `optimizer.apply` after a step's gradients, once the caller has begun the
/// optimizer's step (`step_begin`): regularizer losses and gradients, clipping, the
/// optimizer's update of each trainable weight, then constraints; and the moving averages
/// of the non-trainable weights ([`super::WeightUpdate`]), from the statistics the pass left in
/// their slots. Returns the regularization loss (Keras reports it inside the loss).
pub(super) fn apply_update<M: Trainable, O: Optimizer>(
    model: &mut M,
    optimizer: &mut O,
    grads: &mut Gradients,
) -> f32 {
    let trainable = |index: usize| M::UPDATES.get(index).is_none_or(|u| u.is_trainable());
    // The moving averages first, from the statistics in their slots; the slots are then
    // zeroed, so that clipping (Keras clips the trainable gradients only) counts nothing
    // of theirs.
    for (index, update) in M::UPDATES.iter().enumerate() {
        if !update.is_trainable() {
            update.apply(model.__weight_mut(index), grads.get(index));
            grads.slot(index).fill(0.0);
        }
    }
    let mut regularization = 0.0;
    for (index, regularizer) in M::REGULARIZERS.iter().enumerate() {
        if let (Some(regularizer), true) = (regularizer, trainable(index)) {
            let w = model.__weight(index);
            regularization += regularizer.loss(w);
            regularizer.add_gradient(w, grads.slot(index));
        }
    }
    let clip = optimizer.gradient_clip();
    if clip != GradientClip::None {
        clip.apply(grads.all_mut());
    }
    for index in (0..M::WEIGHT_NAMES.len()).filter(|&i| trainable(i)) {
        optimizer.update(index, model.__weight_mut(index), grads.get(index));
    }
    for (index, constraint) in M::CONSTRAINTS.iter().enumerate() {
        if let (Some(constraint), true) = (constraint, trainable(index)) {
            constraint.apply(model.__weight_mut(index), M::WEIGHT_SHAPES[index]);
        }
    }
    regularization
}

/// How `fit` runs its steps (one implementation today, [`OneThread`]; a split of batches
/// across threads would be another).
pub(super) trait Steps {
    /// One step on a gathered batch (checked lengths, `w` one weight per sample or empty);
    /// returns the loss with regularization and leaves the metrics in `metric_values`. A
    /// non-finite loss or gradient refuses the step before the update, and an update that
    /// leaves a weight or the optimizer state non-finite is undone ([`Guard`]): weights,
    /// optimizer and step count stay as they were.
    fn step(&mut self, x: &[f32], y: &[f32], w: &[f32], seed: u64) -> Result<f32, Divergence>;
    /// The compiled metrics' states over the last step's batch (see `StepState`).
    fn metric_values(&self) -> &[f32];
    /// Validation on checked data, in batches of `batch_size` samples.
    fn evaluate(&self, x: &[f32], y: &[f32], batch_size: usize) -> Result<Logs, Error>;
    /// The model's weights and the optimizer, between steps (for callbacks).
    fn access(&mut self) -> (&mut dyn ModelAccess, &mut dyn Optimizer);
}

/// Steps on the calling thread.
pub(super) struct OneThread<'t, M, O> {
    pub model: &'t mut M,
    pub optimizer: &'t mut O,
    pub objective: Objective<'t>,
    pub state: &'t mut StepState,
    pub step: &'t mut u64,
    /// Refuse a step whose loss, gradient or update is not finite (`fit`; not
    /// `train_on_batch`).
    pub check_finite: bool,
    /// The overflow guard of the updates (with `check_finite`).
    pub guard: Guard,
}

impl<M: Trainable, O: Optimizer> Steps for OneThread<'_, M, O> {
    fn step(&mut self, x: &[f32], y: &[f32], w: &[f32], seed: u64) -> Result<f32, Divergence> {
        let position = Position {
            seed,
            step: *self.step,
            part: 0,
        };
        run_pass(
            &*self.model,
            self.objective,
            x,
            y,
            w,
            &whole_batch,
            position,
            self.state,
        );
        let regularization = if self.check_finite {
            let trainable = |i: usize| M::UPDATES.get(i).is_none_or(|u| u.is_trainable());
            let grad = scan_gradients(self.state, trainable)?;
            let (model, optimizer) = (&mut *self.model, &mut *self.optimizer);
            if self.guard.proves_finite(&*model, optimizer, grad) {
                optimizer.step_begin();
                apply_update(model, optimizer, &mut self.state.grads)
            } else {
                self.guard.save(&*model, optimizer);
                optimizer.step_begin();
                let regularization = apply_update(model, optimizer, &mut self.state.grads);
                self.guard.check(model, optimizer)?;
                regularization
            }
        } else {
            self.optimizer.step_begin();
            apply_update(self.model, self.optimizer, &mut self.state.grads)
        };
        *self.step += 1;
        Ok(self.state.loss + self.state.activity_loss + regularization)
    }

    fn metric_values(&self) -> &[f32] {
        &self.state.metric_values
    }

    fn evaluate(&self, x: &[f32], y: &[f32], batch_size: usize) -> Result<Logs, Error> {
        self.objective.evaluate(&*self.model, x, y, batch_size)
    }

    fn access(&mut self) -> (&mut dyn ModelAccess, &mut dyn Optimizer) {
        // A callback may write the weights or the optimizer state.
        self.guard.forget();
        (&mut *self.model, &mut *self.optimizer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `constraint_bound` holds: each constraint on vectors at the magnitude it is given
    /// (mixed signs, short and long, tiny and large) stays within the bound.
    #[test]
    fn constraints_stay_within_their_bounds() {
        let constraints = [
            Constraint::NonNeg,
            Constraint::UnitNorm { axis: 0 },
            Constraint::MaxNorm {
                max_value: 2.0,
                axis: 0,
            },
            Constraint::MaxNorm {
                max_value: -3.0,
                axis: 0,
            },
            Constraint::MinMaxNorm {
                min_value: 0.5,
                max_value: 1.5,
                rate: 0.7,
                axis: 0,
            },
            Constraint::MinMaxNorm {
                min_value: 4.0,
                max_value: 8.0,
                rate: 1.0,
                axis: 0,
            },
        ];
        for constraint in constraints {
            for w in [0.0f32, 1e-30, 1e-3, 0.5, 1.0, 7.0, 1e6, 1e15] {
                for len in [1usize, 3, 64] {
                    let Some(bound) = constraint_bound(constraint, len, f64::from(w)) else {
                        continue;
                    };
                    for pattern in 0..3 {
                        let mut values: Vec<f32> = (0..len)
                            .map(|k| match (pattern, k % 3) {
                                (0, _) => w,
                                (1, 0) => -w,
                                (1, _) => w * 0.5,
                                _ if k == 0 => w,
                                _ => 0.0,
                            })
                            .collect();
                        constraint.apply(&mut values, &[len, 1]);
                        let top = values.iter().fold(0.0f32, |t, v| t.max(v.abs()));
                        assert!(
                            values.iter().all(|v| v.is_finite())
                                && f64::from(top) <= bound * (1.0 + 1e-6),
                            "{constraint:?} w {w} len {len}: {top} > {bound}"
                        );
                    }
                }
            }
        }
    }

    /// Three rows of one value each, squared error against 0: row losses 1, 4, 9.
    const PRED: [f32; 3] = [1.0, 2.0, 3.0];
    const TRUE: [f32; 3] = [0.0; 3];

    fn loss_of(weights: Option<RowWeights>) -> f32 {
        match weights {
            Some(w) => w.loss(Loss::MeanSquaredError, &PRED, &TRUE, 1),
            None => Loss::MeanSquaredError.value(&PRED, &TRUE, 1),
        }
    }

    #[test]
    fn a_mask_averages_over_the_unmasked_rows() {
        let mask = [true, false, true];
        let weights = RowWeights::new(&[], 3, Some(&mask), &whole_batch);
        assert_eq!(loss_of(weights), (1.0 + 9.0) / 2.0);
        let mut dy = [1.0; 3];
        weights.unwrap().scale_gradient(&mut dy, 1);
        assert_eq!(dy, [1.5, 0.0, 1.5]);
    }

    #[test]
    fn sample_weights_and_the_mask_multiply() {
        // Keras: sum(loss * w * mask) / valid, not a mean by the weights.
        let mask = [true, false, true];
        let weights = RowWeights::new(&[2.0, 0.5, 1.0], 3, Some(&mask), &whole_batch);
        assert_eq!(loss_of(weights), (2.0 + 9.0) / 2.0);
        let weights = RowWeights::new(&[2.0, 0.5, 1.0], 3, None, &whole_batch);
        assert_eq!(loss_of(weights), (2.0 + 2.0 + 9.0) / 3.0);
        assert!(RowWeights::new(&[], 3, None, &whole_batch).is_none());
    }

    #[test]
    fn a_fully_masked_batch_has_loss_zero_and_no_gradient() {
        let weights = RowWeights::new(&[], 3, Some(&[false; 3]), &whole_batch);
        assert_eq!(loss_of(weights), 0.0);
        let mut dy = [1.0; 3];
        weights.unwrap().scale_gradient(&mut dy, 1);
        assert_eq!(dy, [0.0; 3]);
    }

    #[test]
    fn a_share_counts_the_rows_of_the_whole_batch() {
        // The share's 3 rows hold 2 unmasked of the batch's 8 rows and 4 unmasked.
        let batch = |_rows, _valid| (8, 4);
        let weights = RowWeights::new(&[], 3, Some(&[true, false, true]), &batch);
        // Its mean over its rows, 2 / 3 of the batch's rows counting 8 / 4 each.
        assert_eq!(loss_of(weights), (1.0 + 9.0) * 2.0 / 3.0);
    }

    #[test]
    fn a_mask_of_another_length_is_not_applied() {
        assert!(RowWeights::new(&[], 3, Some(&[false; 6]), &whole_batch).is_none());
    }
}
