//! The confusion-matrix metrics' state updates and results: [`update_thresholded`] and
//! [`threshold_result`] (Keras's `Precision`, `Recall`), [`update_auc`] and [`auc_result`]
//! (`AUC`), [`update_f1`] and [`f1_result`] (`F1Score`).
//!
//! States are flat `f32` counts that only ever grow by addition, so the states of several
//! batches (or of a batch's shares on several threads) combine by adding them, which is
//! what Keras's `update_state` does to its variables.

use super::{AucCurve, AucSummation, F1Average};
use crate::math;

/// Keras's `metrics_utils.NEG_INF`, what `top_k` puts in place of the other classes.
const NEG_INF: f32 = -1e10;

/// Keras's `divide_no_nan`: 0 where the denominator is 0.
#[inline]
pub(super) fn divide_no_nan(a: f32, b: f32) -> f32 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Which counts a thresholded metric keeps next to its true positives.
#[derive(Clone, Copy)]
pub(super) enum Second {
    /// Precision: false positives.
    FalsePositives,
    /// Recall: false negatives.
    FalseNegatives,
}

/// Keras's `update_confusion_matrix_variables` (the thresholds-by-comparison path) for one
/// batch: `state` is `[tp; T]` then `[fp or fn; T]`. A label counts as positive when it is
/// nonzero (Keras casts it to bool), a prediction when it is strictly above the threshold;
/// `top_k` first keeps each row's `k` largest (ties to the lower index, as `top_k`) and
/// sets the rest to -1e10; `class_id` then keeps that column only.
#[allow(clippy::too_many_arguments)]
pub(super) fn update_thresholded(
    y_pred: &[f32],
    y_true: &[f32],
    classes: usize,
    thresholds: &[f32],
    top_k: Option<usize>,
    class_id: Option<usize>,
    second: Second,
    state: &mut [f32],
) {
    let t = thresholds.len();
    let (tp, other) = state.split_at_mut(t);
    for (p, y) in y_pred
        .chunks_exact(classes)
        .zip(y_true.chunks_exact(classes))
    {
        for j in 0..classes {
            if class_id.is_some_and(|c| c != j) {
                continue;
            }
            let value = match top_k {
                Some(k) if !in_top_k_filter(p, j, k) => NEG_INF,
                _ => p[j],
            };
            let label = y[j] != 0.0;
            for (i, &threshold) in thresholds.iter().enumerate() {
                let positive = value > threshold;
                match (label, positive, second) {
                    (true, true, _) => tp[i] += 1.0,
                    (false, true, Second::FalsePositives)
                    | (true, false, Second::FalseNegatives) => other[i] += 1.0,
                    _ => {}
                }
            }
        }
    }
}

/// Whether column `j` is among the `k` that `jax.lax.top_k` keeps: the larger values, and
/// among equal values the lower indices.
fn in_top_k_filter(row: &[f32], j: usize, k: usize) -> bool {
    let v = row[j];
    let ahead = row
        .iter()
        .enumerate()
        .filter(|&(i, &u)| u > v || (u == v && i < j))
        .count();
    ahead < k
}

/// `tp / (tp + second)` per threshold (precision or recall).
pub(super) fn threshold_result(state: &[f32], thresholds: usize, emit: &mut dyn FnMut(f32)) {
    let (tp, other) = state.split_at(thresholds);
    for (&tp, &o) in tp.iter().zip(other) {
        emit(divide_no_nan(tp, tp + o));
    }
}

/// Keras's AUC update (its evenly-spaced-thresholds path, which AUC always takes with
/// `num_thresholds`): each prediction, clipped to [0, 1], falls in bucket
/// `max(ceil(p (n - 1)) - 1, 0)` and counts as positive at every threshold up to its
/// bucket. `state` is `[tp; n] [fp; n] [tn; n] [fn; n]`; every value of `y_pred` counts
/// (Keras's `multi_label = False` flattens the labels).
pub(super) fn update_auc(y_pred: &[f32], y_true: &[f32], n: usize, state: &mut [f32]) {
    let (tp, rest) = state.split_at_mut(n);
    let (fp, rest) = rest.split_at_mut(n);
    let (tn, fn_) = rest.split_at_mut(n);
    let scale = (n - 1) as f32;
    for (&p, &y) in y_pred.iter().zip(y_true) {
        let clipped = p.clamp(0.0, 1.0);
        let bucket = ceil(clipped * scale) - 1.0;
        // relu, then int32 (NaN -> 0, as XLA's convert).
        let bucket = if bucket > 0.0 { bucket as usize } else { 0 };
        let label = y != 0.0;
        for i in 0..n {
            let positive = i <= bucket;
            match (label, positive) {
                (true, true) => tp[i] += 1.0,
                (false, true) => fp[i] += 1.0,
                (false, false) => tn[i] += 1.0,
                (true, false) => fn_[i] += 1.0,
            }
        }
    }
}

/// Keras's `AUC.result()`: the Riemann sum over the `n - 1` intervals between thresholds,
/// or for PR with interpolation, Davis & Goadrich's interpolated area
/// (`interpolate_pr_auc`).
pub(super) fn auc_result(state: &[f32], n: usize, curve: AucCurve, sum: AucSummation) -> f32 {
    let tp = &state[..n];
    let fp = &state[n..2 * n];
    let tn = &state[2 * n..3 * n];
    let fn_ = &state[3 * n..4 * n];
    if curve == AucCurve::PR && sum == AucSummation::Interpolation {
        let mut total = 0.0f32;
        for i in 0..n - 1 {
            let dtp = tp[i] - tp[i + 1];
            let (p0, p1) = (tp[i] + fp[i], tp[i + 1] + fp[i + 1]);
            let dp = p0 - p1;
            let slope = divide_no_nan(dtp, dp.max(0.0));
            let intercept = tp[i + 1] - slope * p1;
            let ratio = if p0 > 0.0 && p1 > 0.0 {
                divide_no_nan(p0, p1.max(0.0))
            } else {
                1.0
            };
            total += divide_no_nan(
                slope * (dtp + intercept * math::ln(ratio)),
                (tp[i + 1] + fn_[i + 1]).max(0.0),
            );
        }
        return total;
    }
    let recall = |i: usize| divide_no_nan(tp[i], tp[i] + fn_[i]);
    let point = |i: usize| match curve {
        AucCurve::ROC => (divide_no_nan(fp[i], fp[i] + tn[i]), recall(i)),
        AucCurve::PR => (recall(i), divide_no_nan(tp[i], tp[i] + fp[i])),
    };
    let mut total = 0.0f32;
    for i in 0..n - 1 {
        let ((x0, y0), (x1, y1)) = (point(i), point(i + 1));
        let height = match sum {
            AucSummation::Interpolation => (y0 + y1) / 2.0,
            AucSummation::Minoring => y0.min(y1),
            AucSummation::Majoring => y0.max(y1),
        };
        total += (x0 - x1) * height;
    }
    total
}

/// Keras's `F1Score.update_state`: per class, with `pred` 1 where the prediction is above
/// `threshold`, or with no threshold where it equals its row's maximum and `|p| > 1e-9`:
/// `tp += pred y`, `fp += pred (1 - y)`, `fn += (1 - pred) y`, `weights += y`. `state` is
/// `[tp; C] [fp; C] [fn; C] [weights; C]`.
pub(super) fn update_f1(
    y_pred: &[f32],
    y_true: &[f32],
    classes: usize,
    threshold: Option<f32>,
    state: &mut [f32],
) {
    let (tp, rest) = state.split_at_mut(classes);
    let (fp, rest) = rest.split_at_mut(classes);
    let (fn_, weights) = rest.split_at_mut(classes);
    for (p, y) in y_pred
        .chunks_exact(classes)
        .zip(y_true.chunks_exact(classes))
    {
        let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for j in 0..classes {
            let on = match threshold {
                Some(t) => p[j] > t,
                None => p[j] >= max && p[j].abs() > 1e-9,
            };
            let pred = if on { 1.0 } else { 0.0 };
            tp[j] += pred * y[j];
            fp[j] += pred * (1.0 - y[j]);
            fn_[j] += (1.0 - pred) * y[j];
            weights[j] += y[j];
        }
    }
}

/// Keras's `F1Score.result()` (FBetaScore with beta = 1): per class
/// `2 P R / (P + R + eps)` with `P = tp / (tp + fp + eps)`, `R = tp / (tp + fn + eps)`,
/// then by `average`: none (one value per class), `micro` (the counts summed over classes
/// first), `macro` (the mean), `weighted` (weighted by each class's label sum).
pub(super) fn f1_result(
    state: &[f32],
    classes: usize,
    average: F1Average,
    emit: &mut dyn FnMut(f32),
) {
    const EPS: f32 = crate::losses::EPSILON;
    let f1 = |tp: f32, fp: f32, fn_: f32| {
        let precision = tp / (tp + fp + EPS);
        let recall = tp / (tp + fn_ + EPS);
        (precision * recall) / (precision + recall + EPS) * 2.0
    };
    let tp = &state[..classes];
    let fp = &state[classes..2 * classes];
    let fn_ = &state[2 * classes..3 * classes];
    let weights = &state[3 * classes..4 * classes];
    let per_class = (0..classes).map(|j| f1(tp[j], fp[j], fn_[j]));
    match average {
        F1Average::None => per_class.for_each(emit),
        F1Average::Micro => emit(f1(tp.iter().sum(), fp.iter().sum(), fn_.iter().sum())),
        F1Average::Macro => emit(per_class.sum::<f32>() / classes as f32),
        F1Average::Weighted => {
            let total = weights.iter().sum::<f32>() + EPS;
            emit(per_class.zip(weights).map(|(f, &w)| f * (w / total)).sum())
        }
    }
}

/// `ceil` for the bucket arithmetic (values in `[0, n - 1]`; `core` has no `f32::ceil`).
#[inline]
fn ceil(x: f32) -> f32 {
    let t = x as i64 as f32;
    if t < x {
        t + 1.0
    } else {
        t
    }
}
