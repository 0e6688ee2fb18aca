//! One training step in two pieces: the forward and backward pass over a batch
//! ([`run_pass`]) and the weight update ([`apply_update`]); [`Steps`] is how `fit` runs them.

use super::callbacks::ModelAccess;
use super::{Gradients, Logs, Trainable};
use crate::activations::Activation;
use crate::error::Error;
use crate::losses::Loss;
use crate::metrics::{self, Mean, Metric};
use crate::model::Pass;
use crate::optimizers::{GradientClip, Optimizer};
use crate::pool::Pool;
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

/// Why a step was refused before its update: a non-finite loss or gradient (the update
/// would have written non-finite weights).
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
}

/// The first non-finite value among a pass's loss and gradients, if any.
pub(super) fn divergence(state: &StepState) -> Option<Divergence> {
    let loss = state.loss + state.activity_loss;
    if !loss.is_finite() {
        return Some(Divergence::Loss(loss));
    }
    state
        .grads
        .slots
        .iter()
        .enumerate()
        .find_map(|(weight, g)| {
            crate::error::first_non_finite(g)
                .map(|(_, value)| Divergence::Gradient { weight, value })
        })
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
    /// non-finite loss or gradient refuses the step before the update: weights, optimizer
    /// and step count stay as they were.
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
    /// Refuse a step whose loss or gradient is not finite (`fit`; not `train_on_batch`).
    pub check_finite: bool,
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
        if self.check_finite {
            if let Some(bad) = divergence(self.state) {
                return Err(bad);
            }
        }
        *self.step += 1;
        self.optimizer.step_begin();
        let regularization = apply_update(self.model, self.optimizer, &mut self.state.grads);
        Ok(self.state.loss + self.state.activity_loss + regularization)
    }

    fn metric_values(&self) -> &[f32] {
        &self.state.metric_values
    }

    fn evaluate(&self, x: &[f32], y: &[f32], batch_size: usize) -> Result<Logs, Error> {
        self.objective.evaluate(&*self.model, x, y, batch_size)
    }

    fn access(&mut self) -> (&mut dyn ModelAccess, &mut dyn Optimizer) {
        (&mut *self.model, &mut *self.optimizer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
