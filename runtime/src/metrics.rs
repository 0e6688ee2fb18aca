//! Training metrics: [`Metric`] (what `compile(metrics=[...])` names), its accumulated state
//! ([`Metric::update_state`] / [`Metric::result`], Keras's `update_state` / `result`, held
//! by [`MetricState`]), [`Mean`] (Keras's running `total / count`) and [`MeanMetric`].
//!
//! Every metric keeps a flat `f32` state that batches only add to: `[total, count]` for the
//! mean metrics (accuracies, losses as metrics, RMSE), confusion counts per threshold for
//! `Precision`, `Recall` and `AUC`, per-class counts for `F1Score`. Two states therefore
//! combine by adding them, which is how `fit` accumulates an epoch and how the threaded
//! trainer combines the shares of a batch. A metric's result is one value, or one per
//! threshold (`Precision`/`Recall` with several thresholds) or per class (`F1Score` with
//! `average = None`): see [`crate::Logs`] for how several values are logged.
//!
//! Slices are flat, row-major and batch first, in rows of `classes` values (the last axis),
//! as in [`crate::losses`]. Each metric gives one value per row (the elementwise ones average
//! their row, as Keras's `Mean` does per sample), and the batch value is the mean over rows.

use crate::losses::Loss;
use confusion::{divide_no_nan, Second};

mod confusion;

/// A metric as `model.compile(metrics=[...])` names it.
///
/// ```
/// use kiln_runtime::Metric;
/// let probs = [0.1, 0.9, 0.8, 0.2];
/// let labels = [1.0, 1.0]; // class ids
/// assert_eq!(Metric::SparseCategoricalAccuracy.value(&probs, &labels, 2), 0.5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// `keras.metrics.Accuracy`: how often `y_pred == y_true` exactly, elementwise. (The
    /// *name* `"accuracy"` in `compile` means something else: see
    /// [`Metric::resolve_accuracy`].)
    Accuracy,
    /// How often `(y_pred > threshold) == y_true`, elementwise (Keras's default threshold is
    /// 0.5; a prediction of exactly 0.5 counts as 0).
    BinaryAccuracy {
        /// Predictions strictly above it count as 1.
        threshold: f32,
    },
    /// How often `argmax(y_pred) == argmax(y_true)` per row (one-hot labels). Ties go to the
    /// first maximum, as `argmax` does.
    CategoricalAccuracy,
    /// How often `argmax(y_pred)` equals the class id in `y_true` (one `f32` per row).
    SparseCategoricalAccuracy,
    /// A loss function used as a metric (`metrics=["mae"]`): its per-row value, averaged.
    Loss(Loss),
    /// `keras.metrics.Precision`: `tp / (tp + fp)` accumulated over batches, at each
    /// threshold (a prediction is positive when strictly above it; a label when nonzero).
    Precision {
        /// Keras's `thresholds`; empty means its default, 0.5 (or, with `top_k`, -1e10).
        /// Several give one result per threshold.
        thresholds: &'static [f32],
        /// Count only each row's `k` largest predictions as candidates.
        top_k: Option<usize>,
        /// Measure one class (column) only.
        class_id: Option<usize>,
    },
    /// `keras.metrics.Recall`: `tp / (tp + fn)`, arguments as [`Metric::Precision`].
    Recall {
        /// As [`Metric::Precision`]'s.
        thresholds: &'static [f32],
        /// As [`Metric::Precision`]'s.
        top_k: Option<usize>,
        /// As [`Metric::Precision`]'s.
        class_id: Option<usize>,
    },
    /// `keras.metrics.AUC`: the area under the ROC or PR curve from confusion counts at
    /// `num_thresholds` evenly spaced thresholds (every prediction of the batch counts, as
    /// Keras's default `multi_label = False`).
    AUC {
        /// Keras default 200; at least 2.
        num_thresholds: usize,
        /// Keras default ROC.
        curve: AucCurve,
        /// Keras default interpolation.
        summation_method: AucSummation,
    },
    /// `keras.metrics.TopKCategoricalAccuracy`: whether the one-hot label's class is among
    /// the `k` highest predictions (ties count in the label's favour, as Keras's
    /// `in_top_k`).
    TopKCategoricalAccuracy {
        /// Keras default 5.
        k: usize,
    },
    /// `keras.metrics.SparseTopKCategoricalAccuracy`: as
    /// [`Metric::TopKCategoricalAccuracy`] with one class id per row.
    SparseTopKCategoricalAccuracy {
        /// Keras default 5.
        k: usize,
    },
    /// `keras.metrics.RootMeanSquaredError`: `sqrt(total / count)` of the squared errors.
    RootMeanSquaredError,
    /// `keras.metrics.F1Score`: per-class F1 from counts accumulated over batches.
    F1Score {
        /// How classes combine (Keras default `None`: one value per class).
        average: F1Average,
        /// A prediction counts when above it; `None` (Keras's default) counts each row's
        /// maximum instead.
        threshold: Option<f32>,
    },
}

/// `keras.metrics.AUC`'s `curve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AucCurve {
    /// Receiver operating characteristic: recall against false-positive rate.
    ROC,
    /// Precision against recall.
    PR,
}

/// `keras.metrics.AUC`'s `summation_method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AucSummation {
    /// Trapezoids for ROC; Davis & Goadrich's interpolation for PR (Keras's default).
    Interpolation,
    /// Left-or-right rectangles under the curve.
    Minoring,
    /// Rectangles over the curve.
    Majoring,
}

/// `keras.metrics.F1Score`'s `average`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F1Average {
    /// One value per class (Keras's `None`).
    None,
    /// F1 of the counts summed over classes.
    Micro,
    /// The mean of the per-class values.
    Macro,
    /// The per-class values weighted by each class's number of positive labels.
    Weighted,
}

impl Metric {
    /// `BinaryAccuracy` with Keras's default threshold, 0.5.
    pub const BINARY_ACCURACY: Metric = Metric::BinaryAccuracy { threshold: 0.5 };
    /// `keras.metrics.Precision()` with its defaults.
    pub const PRECISION: Metric = Metric::Precision {
        thresholds: &[],
        top_k: None,
        class_id: None,
    };
    /// `keras.metrics.Recall()` with its defaults.
    pub const RECALL: Metric = Metric::Recall {
        thresholds: &[],
        top_k: None,
        class_id: None,
    };
    /// `keras.metrics.AUC()` with its defaults (200 thresholds, ROC, interpolation).
    pub const AUC_ROC: Metric = Metric::AUC {
        num_thresholds: 200,
        curve: AucCurve::ROC,
        summation_method: AucSummation::Interpolation,
    };
    /// `keras.metrics.MeanSquaredError()`, logged as `mean_squared_error`.
    pub const MEAN_SQUARED_ERROR: Metric = Metric::Loss(Loss::MeanSquaredError);
    /// `keras.metrics.MeanAbsoluteError()`, logged as `mean_absolute_error`.
    pub const MEAN_ABSOLUTE_ERROR: Metric = Metric::Loss(Loss::MeanAbsoluteError);
    /// `keras.metrics.F1Score()` with its defaults (no averaging, no threshold).
    pub const F1_SCORE: Metric = Metric::F1Score {
        average: F1Average::None,
        threshold: None,
    };

    /// What `compile(metrics=["accuracy"])` (or `"acc"`) becomes, which Keras 3 decides from
    /// the shapes: binary accuracy when the model has one output unit, sparse categorical
    /// accuracy when `y_true` has one value per row but the prediction several, categorical
    /// accuracy otherwise. `y_true_last_dim` is 1 for class-id labels.
    pub fn resolve_accuracy(y_pred_last_dim: usize, y_true_last_dim: usize) -> Metric {
        if y_pred_last_dim == 1 {
            Metric::BINARY_ACCURACY
        } else if y_true_last_dim == 1 {
            Metric::SparseCategoricalAccuracy
        } else {
            Metric::CategoricalAccuracy
        }
    }

    /// The metric a Keras name resolves to (`"accuracy"`/`"acc"` excepted, which need
    /// shapes: [`Metric::resolve_accuracy`]). Loss names (`"mse"`, `"mae"`, ...) become
    /// [`Metric::Loss`].
    pub fn from_name(name: &str) -> Option<Metric> {
        Some(match name {
            "binary_accuracy" | "BinaryAccuracy" => Metric::BINARY_ACCURACY,
            "categorical_accuracy" | "CategoricalAccuracy" => Metric::CategoricalAccuracy,
            "sparse_categorical_accuracy" | "SparseCategoricalAccuracy" => {
                Metric::SparseCategoricalAccuracy
            }
            "Accuracy" => Metric::Accuracy,
            "precision" | "Precision" => Metric::PRECISION,
            "recall" | "Recall" => Metric::RECALL,
            "auc" | "AUC" => Metric::AUC_ROC,
            "top_k_categorical_accuracy" | "TopKCategoricalAccuracy" => {
                Metric::TopKCategoricalAccuracy { k: 5 }
            }
            "sparse_top_k_categorical_accuracy" | "SparseTopKCategoricalAccuracy" => {
                Metric::SparseTopKCategoricalAccuracy { k: 5 }
            }
            "root_mean_squared_error" | "RootMeanSquaredError" => Metric::RootMeanSquaredError,
            "f1_score" | "F1Score" => Metric::F1_SCORE,
            other => Metric::Loss(Loss::from_name(other)?),
        })
    }

    /// Keras's name for the metric (the key it is logged under, unless renamed).
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::BinaryAccuracy { .. } => "binary_accuracy",
            Metric::CategoricalAccuracy => "categorical_accuracy",
            Metric::SparseCategoricalAccuracy => "sparse_categorical_accuracy",
            Metric::Loss(loss) => loss.name(),
            Metric::Precision { .. } => "precision",
            Metric::Recall { .. } => "recall",
            Metric::AUC { .. } => "auc",
            Metric::TopKCategoricalAccuracy { .. } => "top_k_categorical_accuracy",
            Metric::SparseTopKCategoricalAccuracy { .. } => "sparse_top_k_categorical_accuracy",
            Metric::RootMeanSquaredError => "root_mean_squared_error",
            Metric::F1Score { .. } => "f1_score",
        }
    }

    /// The thresholds a Precision/Recall uses: its own, or Keras's default.
    fn thresholds(&self) -> &'static [f32] {
        match *self {
            Metric::Precision {
                thresholds, top_k, ..
            }
            | Metric::Recall {
                thresholds, top_k, ..
            } => {
                if !thresholds.is_empty() {
                    thresholds
                } else if top_k.is_some() {
                    &[-1e10]
                } else {
                    &[0.5]
                }
            }
            _ => &[],
        }
    }

    /// Whether this metric's state is Keras's `Mean` (`[total, count]`, one value per
    /// row).
    fn is_mean(&self) -> bool {
        matches!(
            self,
            Metric::Accuracy
                | Metric::BinaryAccuracy { .. }
                | Metric::CategoricalAccuracy
                | Metric::SparseCategoricalAccuracy
                | Metric::Loss(_)
                | Metric::TopKCategoricalAccuracy { .. }
                | Metric::SparseTopKCategoricalAccuracy { .. }
        )
    }

    /// How many `f32`s this metric's state holds for outputs of `classes` values per row.
    pub fn state_len(&self, classes: usize) -> usize {
        match *self {
            Metric::Precision { .. } | Metric::Recall { .. } => 2 * self.thresholds().len(),
            Metric::AUC { num_thresholds, .. } => 4 * num_thresholds.max(2),
            Metric::F1Score { .. } => 4 * classes,
            _ => 2,
        }
    }

    /// How many values [`Metric::result`] gives: one per threshold for Precision/Recall,
    /// one per class for `F1Score` without averaging, else one.
    pub fn result_len(&self, classes: usize) -> usize {
        match *self {
            Metric::Precision { .. } | Metric::Recall { .. } => self.thresholds().len(),
            Metric::F1Score {
                average: F1Average::None,
                ..
            } => classes,
            _ => 1,
        }
    }

    /// Keras's `update_state(y_true, y_pred)`: adds one batch to `state`
    /// ([`Metric::state_len`] values, zero at the start).
    ///
    /// # Panics
    /// If `classes` is 0, the slice lengths do not fit it, or `state` has the wrong length.
    pub fn update_state(&self, y_pred: &[f32], y_true: &[f32], classes: usize, state: &mut [f32]) {
        self.update_state_masked(y_pred, y_true, classes, None, state);
    }

    /// [`Metric::update_state`] for an output that carries a Keras mask (one `bool` per
    /// row, true where the row counts). The mean metrics (the accuracies, losses as
    /// metrics) leave masked rows out of their total and their count, as Keras's
    /// `MeanMetricWrapper.update_state` (`metrics/reduction_metrics.py`) makes the mask a
    /// 0/1 sample weight; a fully masked batch adds nothing. The others (`Precision`,
    /// `Recall`, `AUC`, `F1Score`, `RootMeanSquaredError`) ignore the mask, as Keras's do.
    /// `None`, or a mask that is not one value per row, is [`Metric::update_state`].
    ///
    /// # Panics
    /// As [`Metric::update_state`].
    pub fn update_state_masked(
        &self,
        y_pred: &[f32],
        y_true: &[f32],
        classes: usize,
        mask: Option<&[bool]>,
        state: &mut [f32],
    ) {
        assert_eq!(state.len(), self.state_len(classes), "metric state length");
        if self.is_mean() {
            let rows = self.check(y_pred, y_true, classes);
            match mask.filter(|m| m.len() == rows) {
                Some(mask) => {
                    let (sum, _) = self.weighted_batch_sum(y_pred, y_true, classes, |r| {
                        if mask[r] {
                            1.0
                        } else {
                            0.0
                        }
                    });
                    state[0] += sum;
                    state[1] += mask.iter().filter(|&&m| m).count() as f32;
                }
                None => {
                    let (sum, rows) = self.batch_sum(y_pred, y_true, classes);
                    state[0] += sum;
                    state[1] += rows as f32;
                }
            }
            return;
        }
        self.check(y_pred, y_true, classes);
        match *self {
            Metric::RootMeanSquaredError => {
                let sum: f32 = y_pred
                    .iter()
                    .zip(y_true)
                    .map(|(&p, &y)| (p - y) * (p - y))
                    .sum();
                state[0] += sum;
                state[1] += y_pred.len() as f32;
            }
            Metric::Precision {
                top_k, class_id, ..
            }
            | Metric::Recall {
                top_k, class_id, ..
            } => {
                let second = if matches!(self, Metric::Precision { .. }) {
                    Second::FalsePositives
                } else {
                    Second::FalseNegatives
                };
                confusion::update_thresholded(
                    y_pred,
                    y_true,
                    classes,
                    self.thresholds(),
                    top_k,
                    class_id,
                    second,
                    state,
                );
            }
            Metric::AUC { num_thresholds, .. } => {
                confusion::update_auc(y_pred, y_true, num_thresholds.max(2), state)
            }
            Metric::F1Score { threshold, .. } => {
                confusion::update_f1(y_pred, y_true, classes, threshold, state)
            }
            _ => unreachable!("mean metrics returned above"),
        }
    }

    /// Keras's `result()` of an accumulated `state`, each value passed to `emit` in order
    /// ([`Metric::result_len`] of them).
    pub fn result(&self, state: &[f32], classes: usize, emit: &mut dyn FnMut(f32)) {
        match *self {
            Metric::RootMeanSquaredError => {
                emit(crate::math::sqrt(divide_no_nan(state[0], state[1])))
            }
            Metric::Precision { .. } | Metric::Recall { .. } => {
                confusion::threshold_result(state, self.thresholds().len(), emit)
            }
            Metric::AUC {
                num_thresholds,
                curve,
                summation_method,
            } => emit(confusion::auc_result(
                state,
                num_thresholds.max(2),
                curve,
                summation_method,
            )),
            Metric::F1Score { average, .. } => confusion::f1_result(state, classes, average, emit),
            _ => emit(divide_no_nan(state[0], state[1])),
        }
    }

    /// The first value of [`Metric::result`] (the only one for most metrics).
    pub fn first_result(&self, state: &[f32], classes: usize) -> f32 {
        let mut first = None;
        self.result(state, classes, &mut |v| {
            first.get_or_insert(v);
        });
        first.unwrap_or(0.0)
    }

    /// Checks the slice lengths; returns the number of rows.
    fn check(&self, y_pred: &[f32], y_true: &[f32], classes: usize) -> usize {
        assert!(classes > 0, "`classes` must be at least 1");
        assert_eq!(y_pred.len() % classes, 0, "y_pred length vs classes");
        let rows = y_pred.len() / classes;
        let per_row = if self.is_sparse() { 1 } else { classes };
        assert_eq!(
            y_true.len(),
            rows * per_row,
            "{}: y_true has {} values, expected {}",
            self.name(),
            y_true.len(),
            rows * per_row
        );
        rows
    }

    /// Whether `y_true` holds one class id per row.
    pub fn is_sparse(&self) -> bool {
        match self {
            Metric::SparseCategoricalAccuracy | Metric::SparseTopKCategoricalAccuracy { .. } => {
                true
            }
            Metric::Loss(loss) => loss.is_sparse(),
            _ => false,
        }
    }

    /// The sum of the per-row values and the number of rows, which [`Mean::add`] takes
    /// (for the mean metrics; the others give their batch result times the row count).
    ///
    /// # Panics
    /// If `classes` is 0 or the slice lengths do not fit it.
    pub fn batch_sum(&self, y_pred: &[f32], y_true: &[f32], classes: usize) -> (f32, usize) {
        let rows = self.check(y_pred, y_true, classes);
        if let Metric::Loss(loss) = self {
            // The loss's own batch sum: hinge decides its label mapping per batch.
            return loss.batch_sum(y_pred, y_true, classes);
        }
        if !self.is_mean() {
            let mut state = alloc::vec![0.0; self.state_len(classes)];
            self.update_state(y_pred, y_true, classes, &mut state);
            return (self.first_result(&state, classes) * rows as f32, rows);
        }
        let per_row = if self.is_sparse() { 1 } else { classes };
        let sum = y_pred
            .chunks_exact(classes)
            .zip(y_true.chunks_exact(per_row))
            .map(|(p, y)| self.row_value(p, y))
            .sum();
        (sum, rows)
    }

    /// A mean metric's sum of per-row values, row `r` times `weight(r)`, and the number of
    /// rows.
    fn weighted_batch_sum(
        &self,
        y_pred: &[f32],
        y_true: &[f32],
        classes: usize,
        weight: impl Fn(usize) -> f32,
    ) -> (f32, usize) {
        if let Metric::Loss(loss) = self {
            return loss.weighted_batch_sum(y_pred, y_true, classes, weight);
        }
        let rows = self.check(y_pred, y_true, classes);
        let per_row = if self.is_sparse() { 1 } else { classes };
        let sum = y_pred
            .chunks_exact(classes)
            .zip(y_true.chunks_exact(per_row))
            .enumerate()
            .map(|(r, (p, y))| self.row_value(p, y) * weight(r))
            .sum();
        (sum, rows)
    }

    /// The metric over a batch: the mean of the per-row values (0 for an empty batch).
    pub fn value(&self, y_pred: &[f32], y_true: &[f32], classes: usize) -> f32 {
        let (sum, rows) = self.batch_sum(y_pred, y_true, classes);
        if rows == 0 {
            0.0
        } else {
            sum / rows as f32
        }
    }

    /// One row's value.
    fn row_value(&self, p: &[f32], y: &[f32]) -> f32 {
        let hit = |b: bool| if b { 1.0 } else { 0.0 };
        let n = p.len() as f32;
        match *self {
            Metric::Accuracy => p.iter().zip(y).map(|(a, b)| hit(a == b)).sum::<f32>() / n,
            Metric::BinaryAccuracy { threshold } => {
                // Keras casts `y_pred > threshold` to y_true's dtype, then compares exactly.
                p.iter()
                    .zip(y)
                    .map(|(&a, &b)| hit(hit(a > threshold) == b))
                    .sum::<f32>()
                    / n
            }
            Metric::CategoricalAccuracy => hit(argmax(p) == argmax(y)),
            Metric::SparseCategoricalAccuracy => hit(argmax(p) as f32 == y[0]),
            Metric::Loss(loss) => loss.row_value(p, y),
            Metric::TopKCategoricalAccuracy { k } => hit(in_top_k(p, argmax(y) as i64, k)),
            Metric::SparseTopKCategoricalAccuracy { k } => hit(in_top_k(p, y[0] as i64, k)),
            _ => unreachable!("only mean metrics have row values"),
        }
    }
}

/// The index of the first maximum (NaN counts as the maximum, as `jnp.argmax`).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        let b = row[best];
        if !b.is_nan() && (v > b || v.is_nan()) {
            best = i;
        }
    }
    best
}

/// Keras's `in_top_k` (JAX): the rank of the label's score is 1 plus the number of
/// strictly greater scores, a hit when at most `k`; an out-of-range label or a NaN score
/// counts as -inf.
fn in_top_k(row: &[f32], label: i64, k: usize) -> bool {
    let at = usize::try_from(label)
        .ok()
        .and_then(|i| row.get(i).copied())
        .filter(|v| !v.is_nan())
        .unwrap_or(f32::NEG_INFINITY);
    row.iter().filter(|&&v| v > at).count() < k
}

/// A metric with its state, as a `keras.metrics.Metric` object: `update_state` per batch,
/// `result` at any point, `reset_state` to start over.
///
/// ```
/// use kiln_runtime::{Metric, MetricState};
/// let mut precision = MetricState::new(Metric::PRECISION, 1);
/// precision.update_state(&[0.9, 0.8], &[1.0, 0.0]);
/// precision.update_state(&[0.7, 0.2], &[1.0, 1.0]);
/// assert!((precision.result() - 2.0 / 3.0).abs() < 1e-7);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MetricState {
    /// What is measured.
    pub metric: Metric,
    /// Values per row of the predictions (the last axis).
    pub classes: usize,
    /// The accumulated state ([`Metric::state_len`] values).
    pub state: alloc::vec::Vec<f32>,
}

impl MetricState {
    /// A fresh state for `metric` over rows of `classes` values.
    pub fn new(metric: Metric, classes: usize) -> MetricState {
        MetricState {
            metric,
            classes,
            state: alloc::vec![0.0; metric.state_len(classes)],
        }
    }

    /// Adds one batch (Keras's `update_state(y_true, y_pred)`; note kiln's argument order).
    pub fn update_state(&mut self, y_pred: &[f32], y_true: &[f32]) {
        self.metric
            .update_state(y_pred, y_true, self.classes, &mut self.state);
    }

    /// The first (usually only) value of the result.
    pub fn result(&self) -> f32 {
        self.metric.first_result(&self.state, self.classes)
    }

    /// Every value of the result (per threshold or per class where there are several).
    pub fn results(&self) -> alloc::vec::Vec<f32> {
        let mut out = alloc::vec::Vec::new();
        self.metric
            .result(&self.state, self.classes, &mut |v| out.push(v));
        out
    }

    /// Starts over.
    pub fn reset_state(&mut self) {
        self.state.fill(0.0);
    }
}

/// The compiled metrics' states side by side in one flat buffer, as the trainer keeps
/// them: their total length.
pub(crate) fn states_len(compiled: &[(&'static str, Metric)], classes: usize) -> usize {
    compiled.iter().map(|(_, m)| m.state_len(classes)).sum()
}

/// Adds a batch to every compiled metric's state in `states` ([`states_len`] values),
/// under the output's Keras mask when given ([`Metric::update_state_masked`]).
pub(crate) fn update_states(
    compiled: &[(&'static str, Metric)],
    y_pred: &[f32],
    y_true: &[f32],
    classes: usize,
    mask: Option<&[bool]>,
    states: &mut [f32],
) {
    let mut rest = states;
    for (_, m) in compiled {
        let (state, tail) = rest.split_at_mut(m.state_len(classes));
        m.update_state_masked(y_pred, y_true, classes, mask, state);
        rest = tail;
    }
}

/// Each compiled metric's result values, as `(name, value)` pairs in order (a metric with
/// several values gives several pairs under its one name).
pub(crate) fn push_results(
    compiled: &[(&'static str, Metric)],
    states: &[f32],
    classes: usize,
    out: &mut alloc::vec::Vec<(&'static str, f32)>,
) {
    let mut rest = states;
    for (name, m) in compiled {
        let (state, tail) = rest.split_at(m.state_len(classes));
        m.result(state, classes, &mut |v| out.push((*name, v)));
        rest = tail;
    }
}

/// A running weighted mean, Keras's `keras.metrics.Mean`: `total / count`, both `f32`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Mean {
    /// The weighted sum of the values seen.
    pub total: f32,
    /// The sum of their weights.
    pub count: f32,
}

impl Mean {
    /// An empty mean.
    pub fn new() -> Mean {
        Mean::default()
    }

    /// Adds `count` values whose sum is `sum` (a metric's [`Metric::batch_sum`]).
    pub fn add(&mut self, sum: f32, count: usize) {
        self.total += sum;
        self.count += count as f32;
    }

    /// Adds one value with a weight (Keras tracks the loss this way, weighted by the batch
    /// size, so the epoch loss is the mean over samples even with a short last batch).
    pub fn add_weighted(&mut self, value: f32, weight: f32) {
        self.total += value * weight;
        self.count += weight;
    }

    /// `total / count`, or 0 before anything was added (Keras's `divide_no_nan`).
    pub fn result(&self) -> f32 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }

    /// Forgets everything (at the start of an epoch).
    pub fn reset(&mut self) {
        *self = Mean::default();
    }
}

/// A [`Metric`] with its running mean over the batches of an epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanMetric {
    /// What is measured.
    pub metric: Metric,
    /// The running mean so far.
    pub mean: Mean,
}

impl MeanMetric {
    /// A fresh running mean of `metric`.
    pub fn new(metric: Metric) -> MeanMetric {
        MeanMetric {
            metric,
            mean: Mean::default(),
        }
    }

    /// Adds one batch, as `update_state(y_true, y_pred)`; returns the batch's own value.
    pub fn update(&mut self, y_pred: &[f32], y_true: &[f32], classes: usize) -> f32 {
        let (sum, rows) = self.metric.batch_sum(y_pred, y_true, classes);
        self.mean.add(sum, rows);
        if rows == 0 {
            0.0
        } else {
            sum / rows as f32
        }
    }

    /// The mean over every row seen since the last reset.
    pub fn result(&self) -> f32 {
        self.mean.result()
    }

    /// Starts over (a new epoch).
    pub fn reset(&mut self) {
        self.mean.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_resolves_like_keras() {
        assert_eq!(Metric::resolve_accuracy(1, 1), Metric::BINARY_ACCURACY);
        assert_eq!(
            Metric::resolve_accuracy(10, 1),
            Metric::SparseCategoricalAccuracy
        );
        assert_eq!(
            Metric::resolve_accuracy(10, 10),
            Metric::CategoricalAccuracy
        );
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.4, 0.4, 0.2]), 0);
        assert_eq!(argmax(&[0.1, f32::NAN, 0.9]), 1);
        assert_eq!(argmax(&[0.1, 0.3, 0.9]), 2);
    }

    #[test]
    fn a_mask_leaves_rows_out_of_the_mean_metrics_only() {
        let probs = [0.9, 0.1, 0.2, 0.8, 0.7, 0.3];
        let labels = [0.0, 0.0, 1.0]; // hit, miss, miss
        let mask = [true, false, false];
        let accuracy = Metric::SparseCategoricalAccuracy;
        let mut state = [0.0; 2];
        accuracy.update_state_masked(&probs, &labels, 2, Some(&mask), &mut state);
        assert_eq!(state, [1.0, 1.0]);
        // A fully masked batch adds nothing.
        accuracy.update_state_masked(&probs, &labels, 2, Some(&[false; 3]), &mut state);
        assert_eq!(state, [1.0, 1.0]);
        let mae = Metric::MEAN_ABSOLUTE_ERROR;
        let mut state = [0.0; 2];
        mae.update_state_masked(
            &[1.0, 5.0],
            &[0.0, 0.0],
            1,
            Some(&[false, true]),
            &mut state,
        );
        assert_eq!(state, [5.0, 1.0]);
        // Keras's confusion metrics do not read the mask.
        let (mut masked, mut plain) = ([0.0; 2], [0.0; 2]);
        let precision = Metric::PRECISION;
        precision.update_state_masked(
            &[0.9, 0.8],
            &[1.0, 0.0],
            1,
            Some(&[true, false]),
            &mut masked,
        );
        precision.update_state(&[0.9, 0.8], &[1.0, 0.0], 1, &mut plain);
        assert_eq!(masked, plain);
    }

    #[test]
    fn mean_weights_and_resets() {
        let mut m = Mean::new();
        assert_eq!(m.result(), 0.0);
        m.add_weighted(2.0, 3.0);
        m.add_weighted(4.0, 1.0);
        assert_eq!(m.result(), 2.5);
        m.reset();
        assert_eq!(m.count, 0.0);
    }

    #[test]
    fn names_resolve() {
        assert_eq!(
            Metric::from_name("mae"),
            Some(Metric::Loss(Loss::MeanAbsoluteError))
        );
        assert_eq!(
            Metric::from_name("binary_accuracy"),
            Some(Metric::BINARY_ACCURACY)
        );
        assert_eq!(Metric::from_name("accuracy"), None);
        assert_eq!(Metric::from_name("auc"), Some(Metric::AUC_ROC));
        assert_eq!(
            Metric::from_name("precision").map(|m| m.name()),
            Some("precision")
        );
    }
}
