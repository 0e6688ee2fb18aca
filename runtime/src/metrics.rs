//! Training metrics: [`Metric`] (a batch's value, as Keras's stateless metric functions
//! averaged over the batch), [`Mean`] (Keras's running `total / count`) and [`MeanMetric`]
//! (a metric with its running mean over an epoch, like `keras.metrics.Metric` objects).
//!
//! Slices are flat, row-major and batch first, in rows of `classes` values (the last axis),
//! as in [`crate::losses`]. Each metric gives one value per row (the elementwise ones average
//! their row, as Keras's `Mean` does per sample), and the batch value is the mean over rows.

use crate::losses::Loss;

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
}

impl Metric {
    /// `BinaryAccuracy` with Keras's default threshold, 0.5.
    pub const BINARY_ACCURACY: Metric = Metric::BinaryAccuracy { threshold: 0.5 };

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
        }
    }

    /// Whether `y_true` holds one class id per row.
    pub fn is_sparse(&self) -> bool {
        match self {
            Metric::SparseCategoricalAccuracy => true,
            Metric::Loss(loss) => loss.is_sparse(),
            _ => false,
        }
    }

    /// The sum of the per-row values and the number of rows, which [`Mean::add`] takes.
    ///
    /// # Panics
    /// If `classes` is 0 or the slice lengths do not fit it.
    pub fn batch_sum(&self, y_pred: &[f32], y_true: &[f32], classes: usize) -> (f32, usize) {
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
        let sum = y_pred
            .chunks_exact(classes)
            .zip(y_true.chunks_exact(per_row))
            .map(|(p, y)| self.row_value(p, y))
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
    }
}
