//! One training step in two pieces: the forward and backward pass over a batch
//! ([`run_pass`]) and the weight update ([`apply_update`]); [`Steps`] is how `fit` runs them.

use super::{Gradients, Logs, Trainable};
use crate::activations::Activation;
use crate::error::Error;
use crate::losses::Loss;
use crate::metrics::{self, Metric};
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

    /// Keras's `evaluate` of `model` on checked data: loss (with regularization) and
    /// metrics in inference mode, averaged over samples.
    pub fn evaluate<M: Trainable>(&self, model: &M, x: &[f32], y: &[f32]) -> Result<Logs, Error> {
        let mut pass = Pass::inference();
        let (pred, _) = model.__forward_batch(x, &mut pass);
        let mut loss = self.loss.value(&pred, y, self.classes) + pass.activity_loss;
        for (index, regularizer) in M::REGULARIZERS.iter().enumerate() {
            if let Some(regularizer) = regularizer {
                loss += regularizer.loss(model.__weight(index));
            }
        }
        let mut states = alloc::vec![0.0; metrics::states_len(self.metrics, self.classes)];
        metrics::update_states(self.metrics, &pred, y, self.classes, &mut states);
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

/// The forward and backward pass of `model` over the samples `x`, `y` (checked lengths)
/// into `state`: its gradients, mean loss, activity loss and metrics. Allocation-free once
/// the state's pool holds the step's tensors.
pub(super) fn run_pass<M: Trainable>(
    model: &M,
    objective: Objective,
    x: &[f32],
    y: &[f32],
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
    let mut head = |y_pred: &[f32], dy: &mut [f32]| -> bool {
        loss_value = loss.value(y_pred, y, classes);
        metrics::update_states(metrics, y_pred, y, classes, metric_values);
        if fuse && loss.fused_gradient(y_pred, y, classes, dy) {
            return true;
        }
        loss.gradient(y_pred, y, classes, dy);
        false
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
    model.__train_batch(x, &mut pass, &mut head, &mut state.grads);
    state.pool = core::mem::take(&mut pass.pool);
    state.loss = loss_value;
    state.activity_loss = pass.activity_loss;
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
    /// One step on a gathered batch (checked lengths); returns the loss with regularization
    /// and leaves the metrics in `metric_values`.
    fn step(&mut self, x: &[f32], y: &[f32], seed: u64) -> f32;
    /// The compiled metrics' states over the last step's batch (see `StepState`).
    fn metric_values(&self) -> &[f32];
    /// Validation on checked data.
    fn evaluate(&self, x: &[f32], y: &[f32]) -> Result<Logs, Error>;
}

/// Steps on the calling thread.
pub(super) struct OneThread<'t, M, O> {
    pub model: &'t mut M,
    pub optimizer: &'t mut O,
    pub objective: Objective<'t>,
    pub state: &'t mut StepState,
    pub step: &'t mut u64,
}

impl<M: Trainable, O: Optimizer> Steps for OneThread<'_, M, O> {
    fn step(&mut self, x: &[f32], y: &[f32], seed: u64) -> f32 {
        let position = Position {
            seed,
            step: *self.step,
            part: 0,
        };
        run_pass(&*self.model, self.objective, x, y, position, self.state);
        *self.step += 1;
        self.optimizer.step_begin();
        let regularization = apply_update(self.model, self.optimizer, &mut self.state.grads);
        self.state.loss + self.state.activity_loss + regularization
    }

    fn metric_values(&self) -> &[f32] {
        &self.state.metric_values
    }

    fn evaluate(&self, x: &[f32], y: &[f32]) -> Result<Logs, Error> {
        self.objective.evaluate(&*self.model, x, y)
    }
}
