//! Loss functions and their gradients: [`Loss::value`], [`Loss::gradient`], and the fused
//! output-layer gradients [`fused_softmax_cross_entropy_gradient`] /
//! [`fused_sigmoid_binary_crossentropy_gradient`].
//!
//! Everything works on flat row-major `f32` slices, batch first. `classes` is the length of
//! the last axis: `y_pred` is a sequence of *rows* of `classes` values (one row per sample
//! for a `(batch, classes)` output; several per sample for higher ranks). Formulas are Keras
//! 3's (JAX backend) to the letter:
//!
//! - each row's loss is Keras's per-sample loss along the last axis (MSE, MAE and binary
//!   cross-entropy average their elements, the categorical ones sum over classes);
//! - the reduction is Keras's default `"sum_over_batch_size"`: the sum of the row losses
//!   divided by their number, i.e. the mean over rows;
//! - probabilities are clipped to `[1e-7, 1 - 1e-7]` (Keras's `backend.epsilon()`), and the
//!   categorical losses first divide each row by its sum, as `keras.ops` does;
//! - `from_logits` goes through log-softmax / log-sigmoid, which never overflow.
//!
//! Gradients are `d value / d y_pred` exactly as `jax.grad` of the Keras loss returns them,
//! clipping included: zero where a probability lies outside the clip range, half the slope
//! where it sits exactly on a bound (JAX's `jnp.clip` splits ties), and for MAE JAX's
//! `abs'(x) = x >= 0 ? 1 : -1`, so a prediction equal to its target gets `-1 / n` (Keras
//! differentiates `|y_true - y_pred|`), not 0.

use crate::math;

/// Keras's `backend.epsilon()`: probabilities are clipped to `[EPSILON, 1 - EPSILON]`.
pub const EPSILON: f32 = 1e-7;

/// `1 - 1e-7` rounded once to `f32`, as JAX casts Keras's Python-float bound (computing it
/// in `f32` would also give 0.99999988; this spells out where it comes from).
const ONE_MINUS_EPSILON: f32 = (1.0f64 - 1e-7) as f32;

/// A loss function, named and parameterised as in `keras.losses`.
///
/// ```
/// use kiln_runtime::Loss;
/// let loss = Loss::from_name("mse").unwrap();
/// // Two samples with two outputs each: mean over outputs, then over the batch.
/// let value = loss.value(&[1.0, 2.0, 3.0, 4.0], &[1.0, 1.0, 1.0, 1.0], 2);
/// assert_eq!(value, (0.0 + 1.0 + 4.0 + 9.0) / 4.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// `mean((y_true - y_pred)^2)` over the last axis (Keras `"mse"`).
    MeanSquaredError,
    /// `mean(|y_true - y_pred|)` over the last axis (Keras `"mae"`).
    MeanAbsoluteError,
    /// `mean(-(y log p + (1 - y) log(1 - p)))` over the last axis, `p` clipped to
    /// `[1e-7, 1 - 1e-7]`, or computed from logits through log-sigmoid.
    BinaryCrossentropy {
        /// `y_pred` holds logits (pre-sigmoid) rather than probabilities.
        from_logits: bool,
    },
    /// `-sum(y log q)` over classes, with `q = clip(p / sum(p))`, or log-softmax of logits.
    /// `y_true` is one-hot (or any distribution) with the same shape as `y_pred`.
    CategoricalCrossentropy {
        /// `y_pred` holds logits (pre-softmax) rather than probabilities.
        from_logits: bool,
    },
    /// [`Loss::CategoricalCrossentropy`] with integer labels: `y_true` holds one class id
    /// per row, stored as `f32` (truncated toward zero as Keras's `int32` cast does; an id
    /// outside `0..classes` selects no class, so its row contributes 0, as JAX's one-hot).
    SparseCategoricalCrossentropy {
        /// `y_pred` holds logits (pre-softmax) rather than probabilities.
        from_logits: bool,
    },
    /// [`Loss::BinaryCrossentropy`] with Keras's `label_smoothing`: each label becomes
    /// `y * (1 - s) + 0.5 * s` first. A variant of its own so that code naming
    /// `BinaryCrossentropy { from_logits }` keeps compiling; [`Loss::with_label_smoothing`]
    /// builds it.
    SmoothedBinaryCrossentropy {
        /// `y_pred` holds logits (pre-sigmoid) rather than probabilities.
        from_logits: bool,
        /// Keras's `label_smoothing`, in `[0, 1]`.
        label_smoothing: f32,
    },
    /// [`Loss::CategoricalCrossentropy`] with Keras's `label_smoothing`: each label becomes
    /// `y * (1 - s) + s / classes` first.
    SmoothedCategoricalCrossentropy {
        /// `y_pred` holds logits (pre-softmax) rather than probabilities.
        from_logits: bool,
        /// Keras's `label_smoothing`, in `[0, 1]`.
        label_smoothing: f32,
    },
    /// Keras `"huber"` / `Huber(delta = 1.0)`: with `e = y_pred - y_true`, the mean over the
    /// last axis of `0.5 e^2` where `|e| <= delta`, else `delta |e| - 0.5 delta^2`.
    Huber {
        /// Where the quadratic turns linear (Keras default 1.0).
        delta: f32,
    },
    /// Keras `"log_cosh"`: the mean of `log(cosh(e))`, computed as Keras does, as
    /// `e + softplus(-2e) - log 2`, which never overflows.
    LogCosh,
    /// Keras `"kl_divergence"` (`"kld"`): `sum(y log(y / p))` over the last axis, with both
    /// `y` and `p` clipped to `[1e-7, 1]`.
    KLDivergence,
    /// Keras `"poisson"`: the mean of `p - y log(p + 1e-7)` (NaN for `p <= -1e-7`, as Keras).
    Poisson,
    /// Keras `CosineSimilarity(axis = -1)`: the *negative* cosine similarity along the last
    /// axis (Keras's default; kiln has no other), `-sum(l2_normalize(y) * l2_normalize(p))`,
    /// so minimising it aligns the vectors. Keras normalises as
    /// `x * min(rsqrt(sum(x^2)), 1 / 1e-7)`.
    CosineSimilarity,
    /// Keras `"hinge"`: the mean of `max(1 - y p, 0)`. Labels are `-1`/`1`; when every label
    /// of the batch is 0 or 1, Keras maps them to `2y - 1` first (one decision per batch).
    Hinge,
    /// Keras `"squared_hinge"`: the mean of `max(1 - y p, 0)^2`, labels as [`Loss::Hinge`].
    SquaredHinge,
    /// Keras `"categorical_hinge"`: `max(max((1 - y) p) - sum(y p) + 1, 0)` per row, for
    /// one-hot `y`.
    CategoricalHinge,
    /// Keras `"msle"`: the mean of `(log(max(p, 1e-7) + 1) - log(max(y, 1e-7) + 1))^2`.
    MeanSquaredLogarithmicError,
    /// Keras `"mape"`: `100 * mean(|(y - p) / max(|y|, 1e-7)|)`.
    MeanAbsolutePercentageError,
}

impl Loss {
    /// This loss with Keras's `label_smoothing = s` (`BinaryCrossentropy(label_smoothing=s)`
    /// and its categorical twin); `None` for a loss that has no such argument.
    pub fn with_label_smoothing(self, s: f32) -> Option<Loss> {
        Some(match self {
            Loss::BinaryCrossentropy { from_logits }
            | Loss::SmoothedBinaryCrossentropy { from_logits, .. } => {
                Loss::SmoothedBinaryCrossentropy {
                    from_logits,
                    label_smoothing: s,
                }
            }
            Loss::CategoricalCrossentropy { from_logits }
            | Loss::SmoothedCategoricalCrossentropy { from_logits, .. } => {
                Loss::SmoothedCategoricalCrossentropy {
                    from_logits,
                    label_smoothing: s,
                }
            }
            _ => return None,
        })
    }

    /// The loss a Keras name resolves to in `keras.losses.get` (snake_case function names,
    /// their short aliases `mse`/`mae`, and class names), with `from_logits = false`.
    pub fn from_name(name: &str) -> Option<Loss> {
        Some(match name {
            "mse" | "mean_squared_error" | "MeanSquaredError" => Loss::MeanSquaredError,
            "mae" | "mean_absolute_error" | "MeanAbsoluteError" => Loss::MeanAbsoluteError,
            "binary_crossentropy" | "BinaryCrossentropy" => {
                Loss::BinaryCrossentropy { from_logits: false }
            }
            "categorical_crossentropy" | "CategoricalCrossentropy" => {
                Loss::CategoricalCrossentropy { from_logits: false }
            }
            "sparse_categorical_crossentropy" | "SparseCategoricalCrossentropy" => {
                Loss::SparseCategoricalCrossentropy { from_logits: false }
            }
            "bce" | "BCE" => Loss::BinaryCrossentropy { from_logits: false },
            "huber" | "Huber" => Loss::Huber { delta: 1.0 },
            "log_cosh" | "LogCosh" => Loss::LogCosh,
            "kl_divergence" | "kld" | "KLD" | "KLDivergence" => Loss::KLDivergence,
            "poisson" | "Poisson" => Loss::Poisson,
            "cosine_similarity" | "CosineSimilarity" => Loss::CosineSimilarity,
            "hinge" | "Hinge" => Loss::Hinge,
            "squared_hinge" | "SquaredHinge" => Loss::SquaredHinge,
            "categorical_hinge" | "CategoricalHinge" => Loss::CategoricalHinge,
            "msle" | "MSLE" | "mean_squared_logarithmic_error" | "MeanSquaredLogarithmicError" => {
                Loss::MeanSquaredLogarithmicError
            }
            "mape" | "MAPE" | "mean_absolute_percentage_error" | "MeanAbsolutePercentageError" => {
                Loss::MeanAbsolutePercentageError
            }
            _ => return None,
        })
    }

    /// Every name [`Loss::from_name`] accepts, for "did you mean" suggestions.
    pub const NAMES: &'static [&'static str] = &[
        "mse",
        "mean_squared_error",
        "MeanSquaredError",
        "mae",
        "mean_absolute_error",
        "MeanAbsoluteError",
        "binary_crossentropy",
        "BinaryCrossentropy",
        "categorical_crossentropy",
        "CategoricalCrossentropy",
        "sparse_categorical_crossentropy",
        "SparseCategoricalCrossentropy",
        "bce",
        "BCE",
        "huber",
        "Huber",
        "log_cosh",
        "LogCosh",
        "kl_divergence",
        "kld",
        "KLD",
        "KLDivergence",
        "poisson",
        "Poisson",
        "cosine_similarity",
        "CosineSimilarity",
        "hinge",
        "Hinge",
        "squared_hinge",
        "SquaredHinge",
        "categorical_hinge",
        "CategoricalHinge",
        "msle",
        "MSLE",
        "mean_squared_logarithmic_error",
        "MeanSquaredLogarithmicError",
        "mape",
        "MAPE",
        "mean_absolute_percentage_error",
        "MeanAbsolutePercentageError",
    ];

    /// Keras's snake_case name of this loss (the key `fit` logs it under).
    pub fn name(&self) -> &'static str {
        match self {
            Loss::MeanSquaredError => "mean_squared_error",
            Loss::MeanAbsoluteError => "mean_absolute_error",
            Loss::BinaryCrossentropy { .. } | Loss::SmoothedBinaryCrossentropy { .. } => {
                "binary_crossentropy"
            }
            Loss::CategoricalCrossentropy { .. } | Loss::SmoothedCategoricalCrossentropy { .. } => {
                "categorical_crossentropy"
            }
            Loss::SparseCategoricalCrossentropy { .. } => "sparse_categorical_crossentropy",
            Loss::Huber { .. } => "huber",
            Loss::LogCosh => "log_cosh",
            Loss::KLDivergence => "kl_divergence",
            Loss::Poisson => "poisson",
            Loss::CosineSimilarity => "cosine_similarity",
            Loss::Hinge => "hinge",
            Loss::SquaredHinge => "squared_hinge",
            Loss::CategoricalHinge => "categorical_hinge",
            Loss::MeanSquaredLogarithmicError => "mean_squared_logarithmic_error",
            Loss::MeanAbsolutePercentageError => "mean_absolute_percentage_error",
        }
    }

    /// Whether `y_true` holds one class id per row instead of a row of `classes` values.
    pub fn is_sparse(&self) -> bool {
        matches!(self, Loss::SparseCategoricalCrossentropy { .. })
    }

    /// How many `y_true` values go with `y_pred_len` predictions: one per row for the
    /// sparse loss, else one per prediction.
    pub fn y_true_len(&self, y_pred_len: usize, classes: usize) -> usize {
        if self.is_sparse() {
            y_pred_len / classes.max(1)
        } else {
            y_pred_len
        }
    }

    /// The loss of one row of `classes` predictions (`y_true` is that row's label slice:
    /// one value for the sparse loss). For [`Loss::Hinge`] / [`Loss::SquaredHinge`], whether
    /// labels are 0/1 is decided from this row alone; [`Loss::value`] decides it per batch,
    /// as Keras.
    pub fn row_value(&self, y_pred: &[f32], y_true: &[f32]) -> f32 {
        self.row_value_in(y_pred, y_true, Batch::of(self, y_true))
    }

    /// The sum of the row losses of a batch and the number of rows, with the per-batch
    /// decisions Keras makes (hinge label mapping) taken over the whole batch.
    ///
    /// # Panics
    /// As [`Loss::value`].
    pub fn batch_sum(&self, y_pred: &[f32], y_true: &[f32], classes: usize) -> (f32, usize) {
        let rows = self.check(y_pred, y_true, classes);
        let batch = Batch::of(self, y_true);
        let per_row = self.y_true_len(classes, classes);
        let sum = y_pred
            .chunks_exact(classes)
            .zip(y_true.chunks_exact(per_row))
            .map(|(p, y)| self.row_value_in(p, y, batch))
            .sum();
        (sum, rows)
    }

    /// [`Loss::batch_sum`] with row `r`'s loss multiplied by `weight(r)`: the sum Keras
    /// divides by the row count for `"sum_over_batch_size"` once sample weights and the
    /// output mask are merged into one weight per row (`losses/loss.py`,
    /// `reduce_weighted_values`). As in Keras, a NaN row loss stays NaN at weight 0.
    ///
    /// # Panics
    /// As [`Loss::value`].
    pub fn weighted_batch_sum(
        &self,
        y_pred: &[f32],
        y_true: &[f32],
        classes: usize,
        weight: impl Fn(usize) -> f32,
    ) -> (f32, usize) {
        let rows = self.check(y_pred, y_true, classes);
        let batch = Batch::of(self, y_true);
        let per_row = self.y_true_len(classes, classes);
        let sum = y_pred
            .chunks_exact(classes)
            .zip(y_true.chunks_exact(per_row))
            .enumerate()
            .map(|(r, (p, y))| self.row_value_in(p, y, batch) * weight(r))
            .sum();
        (sum, rows)
    }

    fn row_value_in(&self, y_pred: &[f32], y_true: &[f32], batch: Batch) -> f32 {
        let n = y_pred.len() as f32;
        let pairs = || y_pred.iter().zip(y_true).map(|(&p, &y)| (p, y));
        let mean = |f: &dyn Fn(f32, f32) -> f32| pairs().map(|(p, y)| f(p, y)).sum::<f32>() / n;
        match *self {
            Loss::MeanSquaredError => mean(&|p, y| (y - p) * (y - p)),
            Loss::MeanAbsoluteError => mean(&|p, y| (y - p).abs()),
            Loss::BinaryCrossentropy { from_logits } => mean(&|p, y| binary_ce(p, y, from_logits)),
            Loss::SmoothedBinaryCrossentropy {
                from_logits,
                label_smoothing: s,
            } => mean(&|p, y| binary_ce(p, smooth_binary(y, s), from_logits)),
            Loss::CategoricalCrossentropy { from_logits } => {
                let log_prob = LogProb::new(y_pred, from_logits);
                -pairs().map(|(p, y)| y * log_prob.at(p)).sum::<f32>()
            }
            Loss::SmoothedCategoricalCrossentropy {
                from_logits,
                label_smoothing: s,
            } => {
                let log_prob = LogProb::new(y_pred, from_logits);
                -pairs()
                    .map(|(p, y)| smooth_categorical(y, s, n) * log_prob.at(p))
                    .sum::<f32>()
            }
            Loss::SparseCategoricalCrossentropy { from_logits } => {
                match label(y_true[0], y_pred.len()) {
                    Some(k) => -LogProb::new(y_pred, from_logits).at(y_pred[k]),
                    None => 0.0,
                }
            }
            Loss::Huber { delta } => mean(&|p, y| {
                let e = p - y;
                if e.abs() <= delta {
                    0.5 * (e * e)
                } else {
                    delta * e.abs() - 0.5 * (delta * delta)
                }
            }),
            Loss::LogCosh => mean(&|p, y| {
                let x = p - y;
                x + softplus(x * -2.0) - core::f32::consts::LN_2
            }),
            Loss::KLDivergence => pairs()
                .map(|(p, y)| {
                    let (y, p) = (clip_to(y, EPSILON, 1.0), clip_to(p, EPSILON, 1.0));
                    y * math::ln(y / p)
                })
                .sum(),
            Loss::Poisson => mean(&|p, y| p - y * math::ln(p + EPSILON)),
            Loss::CosineSimilarity => {
                let (ry, rp) = (inv_norm(y_true).0, inv_norm(y_pred).0);
                -pairs().map(|(p, y)| (y * ry) * (p * rp)).sum::<f32>()
            }
            Loss::Hinge => mean(&|p, y| hinge_margin(p, batch.hinge_label(y))),
            Loss::SquaredHinge => mean(&|p, y| {
                let m = hinge_margin(p, batch.hinge_label(y));
                m * m
            }),
            Loss::CategoricalHinge => {
                let pos: f32 = pairs().map(|(p, y)| y * p).sum();
                let neg = pairs()
                    .map(|(p, y)| (1.0 - y) * p)
                    .fold(f32::NEG_INFINITY, f32::max);
                max0(neg - pos + 1.0)
            }
            Loss::MeanSquaredLogarithmicError => mean(&|p, y| {
                let d = msle_log(p) - msle_log(y);
                d * d
            }),
            Loss::MeanAbsolutePercentageError => {
                100.0 * mean(&|p, y| ((y - p) / y.abs().max(EPSILON)).abs())
            }
        }
    }

    /// The loss over a batch: the mean of the row losses (Keras's `"sum_over_batch_size"`).
    ///
    /// # Panics
    /// If `classes` is 0, `y_pred.len()` is not a multiple of it, or `y_true` does not have
    /// [`Loss::y_true_len`] values. The training loop checks its data before calling.
    pub fn value(&self, y_pred: &[f32], y_true: &[f32], classes: usize) -> f32 {
        let (sum, rows) = self.batch_sum(y_pred, y_true, classes);
        if rows == 0 {
            return 0.0; // Keras's divide_no_nan
        }
        sum / rows as f32
    }

    /// Writes `d value / d y_pred` into `grad_out` (same length as `y_pred`), matching
    /// `jax.grad` of the Keras loss: clipped probabilities get 0 (half on the bound),
    /// `|0|` gets JAX's slope 1.
    ///
    /// # Panics
    /// As [`Loss::value`], and if `grad_out.len() != y_pred.len()`.
    pub fn gradient(&self, y_pred: &[f32], y_true: &[f32], classes: usize, grad_out: &mut [f32]) {
        let rows = self.check(y_pred, y_true, classes);
        assert_eq!(grad_out.len(), y_pred.len(), "gradient buffer length");
        if rows == 0 {
            return;
        }
        let batch = Batch::of(self, y_true);
        let per_row = self.y_true_len(classes, classes);
        // Keras divides the summed row losses by the row count, and the elementwise losses
        // also average over the row: fold both into one scale.
        let batch_scale = 1.0 / rows as f32;
        let elem_scale = 1.0 / (rows as f32 * classes as f32);
        let n = classes as f32;
        let rows_iter = y_pred
            .chunks_exact(classes)
            .zip(y_true.chunks_exact(per_row))
            .zip(grad_out.chunks_exact_mut(classes));
        for ((p, y), g) in rows_iter {
            // Elementwise losses: `g = d(element loss)/dp * elem_scale`.
            let each = |g: &mut [f32], f: &dyn Fn(f32, f32) -> f32| {
                for ((g, &p), &y) in g.iter_mut().zip(p).zip(y) {
                    *g = f(p, y) * elem_scale;
                }
            };
            match *self {
                Loss::MeanSquaredError => each(g, &|p, y| 2.0 * (p - y)),
                Loss::MeanAbsoluteError => each(g, &|p, y| -abs_slope(y - p)),
                Loss::BinaryCrossentropy { from_logits } => {
                    each(g, &|p, y| binary_ce_slope(p, y, from_logits))
                }
                Loss::SmoothedBinaryCrossentropy {
                    from_logits,
                    label_smoothing: s,
                } => each(g, &|p, y| {
                    binary_ce_slope(p, smooth_binary(y, s), from_logits)
                }),
                Loss::CategoricalCrossentropy { from_logits: true } => {
                    softmax_ce_logits_gradient(p, |j| y[j], g, batch_scale);
                }
                Loss::SparseCategoricalCrossentropy { from_logits: true } => {
                    let k = label(y[0], classes);
                    softmax_ce_logits_gradient(p, |j| onehot(k, j), g, batch_scale);
                }
                Loss::CategoricalCrossentropy { from_logits: false } => {
                    normalized_ce_gradient(p, |j| y[j], g, batch_scale);
                }
                Loss::SparseCategoricalCrossentropy { from_logits: false } => {
                    let k = label(y[0], classes);
                    normalized_ce_gradient(p, |j| onehot(k, j), g, batch_scale);
                }
                Loss::SmoothedCategoricalCrossentropy {
                    from_logits,
                    label_smoothing: s,
                } => {
                    let ys = |j: usize| smooth_categorical(y[j], s, n);
                    if from_logits {
                        softmax_ce_logits_gradient(p, ys, g, batch_scale);
                    } else {
                        normalized_ce_gradient(p, ys, g, batch_scale);
                    }
                }
                Loss::Huber { delta } => each(g, &|p, y| {
                    let e = p - y;
                    if e.abs() <= delta {
                        e
                    } else {
                        delta * abs_slope(e)
                    }
                }),
                // d/dx [x + softplus(-2x)] = 1 - 2 sigmoid(-2x).
                Loss::LogCosh => each(g, &|p, y| 1.0 - 2.0 * sigmoid((p - y) * -2.0)),
                Loss::KLDivergence => {
                    for ((g, &p), &y) in g.iter_mut().zip(p).zip(y) {
                        let yc = clip_to(y, EPSILON, 1.0);
                        let pc = clip_to(p, EPSILON, 1.0);
                        *g = -(yc / pc) * clip_to_slope(p, EPSILON, 1.0) * batch_scale;
                    }
                }
                Loss::Poisson => each(g, &|p, y| 1.0 - y / (p + EPSILON)),
                Loss::CosineSimilarity => {
                    cosine_gradient(p, y, g, batch_scale);
                }
                Loss::Hinge => each(g, &|p, y| {
                    let t = batch.hinge_label(y);
                    -t * max0_slope(1.0 - t * p)
                }),
                Loss::SquaredHinge => each(g, &|p, y| {
                    let t = batch.hinge_label(y);
                    let m = 1.0 - t * p;
                    2.0 * max0(m) * max0_slope(m) * -t
                }),
                Loss::CategoricalHinge => categorical_hinge_gradient(p, y, g, batch_scale),
                Loss::MeanSquaredLogarithmicError => each(g, &|p, y| {
                    let m = if p > EPSILON { p } else { EPSILON };
                    let slope = if p > EPSILON {
                        1.0
                    } else if p == EPSILON {
                        0.5
                    } else {
                        0.0
                    };
                    2.0 * (msle_log(p) - msle_log(y)) / (m + 1.0) * slope
                }),
                Loss::MeanAbsolutePercentageError => each(g, &|p, y| {
                    let m = y.abs().max(EPSILON);
                    -100.0 * abs_slope((y - p) / m) / m
                }),
            }
        }
    }

    /// The gradient with respect to the *pre-activation* of the output layer, when that
    /// layer's activation is the one this loss pairs with: softmax for the (sparse)
    /// categorical cross-entropy, sigmoid for binary cross-entropy (each with
    /// `from_logits = false`). `probs` are the activation's outputs. Returns `false`, writing
    /// nothing, for any other loss.
    ///
    /// This is the stable path: `(p - y) / n` never divides by a clipped probability. It
    /// equals Keras's chained gradient wherever no probability reaches the `1e-7` clip; where
    /// one does, Keras's gradient through the clip is 0 for that entry and this one is not
    /// (which is the reason to fuse).
    ///
    /// # Panics
    /// As [`Loss::gradient`].
    pub fn fused_gradient(
        &self,
        probs: &[f32],
        y_true: &[f32],
        classes: usize,
        grad_out: &mut [f32],
    ) -> bool {
        match *self {
            Loss::CategoricalCrossentropy { from_logits: false } => {
                fused_softmax_cross_entropy_gradient(probs, y_true, classes, grad_out)
            }
            Loss::SparseCategoricalCrossentropy { from_logits: false } => {
                fused_softmax_sparse_cross_entropy_gradient(probs, y_true, classes, grad_out)
            }
            Loss::BinaryCrossentropy { from_logits: false } => {
                fused_sigmoid_binary_crossentropy_gradient(probs, y_true, classes, grad_out)
            }
            _ => return false,
        }
        true
    }

    /// Checks the slice lengths and returns the number of rows.
    fn check(&self, y_pred: &[f32], y_true: &[f32], classes: usize) -> usize {
        assert!(classes > 0, "`classes` must be at least 1");
        assert_eq!(
            y_pred.len() % classes,
            0,
            "y_pred has {} values, not a multiple of {classes} classes",
            y_pred.len()
        );
        let expected = self.y_true_len(y_pred.len(), classes);
        assert_eq!(
            y_true.len(),
            expected,
            "{}: y_true has {} values, expected {expected} for {} predictions",
            self.name(),
            y_true.len(),
            y_pred.len()
        );
        y_pred.len() / classes
    }
}

/// `d loss / d z` for softmax followed by categorical cross-entropy, given `probs =
/// softmax(z)` (rows of `classes`) and `y_true` of the same shape: `(p sum(y) - y) / rows`,
/// i.e. `(p - y) / rows` for labels that sum to 1.
///
/// # Panics
/// If the lengths disagree or are not a multiple of `classes`.
pub fn fused_softmax_cross_entropy_gradient(
    probs: &[f32],
    y_true: &[f32],
    classes: usize,
    grad_out: &mut [f32],
) {
    let rows = Loss::CategoricalCrossentropy { from_logits: false }.check(probs, y_true, classes);
    assert_eq!(grad_out.len(), probs.len(), "gradient buffer length");
    let scale = 1.0 / rows.max(1) as f32;
    for ((p, y), g) in probs
        .chunks_exact(classes)
        .zip(y_true.chunks_exact(classes))
        .zip(grad_out.chunks_exact_mut(classes))
    {
        let total: f32 = y.iter().sum();
        for ((g, &p), &y) in g.iter_mut().zip(p).zip(y) {
            *g = (p * total - y) * scale;
        }
    }
}

/// [`fused_softmax_cross_entropy_gradient`] with one class id per row in `y_true`:
/// `(p - onehot(y)) / rows` (an id outside `0..classes` selects nothing, as in the loss).
///
/// # Panics
/// If the lengths disagree.
pub fn fused_softmax_sparse_cross_entropy_gradient(
    probs: &[f32],
    y_true: &[f32],
    classes: usize,
    grad_out: &mut [f32],
) {
    let rows =
        Loss::SparseCategoricalCrossentropy { from_logits: false }.check(probs, y_true, classes);
    assert_eq!(grad_out.len(), probs.len(), "gradient buffer length");
    let scale = 1.0 / rows.max(1) as f32;
    for ((p, &y), g) in probs
        .chunks_exact(classes)
        .zip(y_true)
        .zip(grad_out.chunks_exact_mut(classes))
    {
        let k = label(y, classes);
        let total = if k.is_some() { 1.0 } else { 0.0 };
        for (j, (g, &p)) in g.iter_mut().zip(p).enumerate() {
            *g = (p * total - onehot(k, j)) * scale;
        }
    }
}

/// `d loss / d z` for sigmoid followed by binary cross-entropy, given `probs = sigmoid(z)`:
/// `(p - y) / (rows * classes)` (the loss averages over both).
///
/// # Panics
/// If the lengths disagree or are not a multiple of `classes`.
pub fn fused_sigmoid_binary_crossentropy_gradient(
    probs: &[f32],
    y_true: &[f32],
    classes: usize,
    grad_out: &mut [f32],
) {
    let rows = Loss::BinaryCrossentropy { from_logits: false }.check(probs, y_true, classes);
    assert_eq!(grad_out.len(), probs.len(), "gradient buffer length");
    let scale = 1.0 / (rows.max(1) as f32 * classes as f32);
    for ((g, &p), &y) in grad_out.iter_mut().zip(probs).zip(y_true) {
        *g = (p - y) * scale;
    }
}

/// Keras's `jnp.clip(p, 1e-7, 1 - 1e-7)`.
#[inline]
fn clip(p: f32) -> f32 {
    // maximum then minimum, as jnp.clip; NaN stays NaN.
    let lo = if p < EPSILON { EPSILON } else { p };
    if lo > ONE_MINUS_EPSILON {
        ONE_MINUS_EPSILON
    } else {
        lo
    }
}

/// The derivative of [`clip`] as JAX computes it: 1 inside, 0 outside, and 1/2 exactly on a
/// bound (`jnp.maximum`/`jnp.minimum` share the slope between tied arguments).
#[inline]
fn clip_slope(p: f32) -> f32 {
    if p > EPSILON && p < ONE_MINUS_EPSILON {
        1.0
    } else if p == EPSILON || p == ONE_MINUS_EPSILON {
        0.5
    } else if p.is_nan() {
        f32::NAN
    } else {
        0.0
    }
}

/// JAX's derivative of `abs`: `select(x >= 0, 1, -1)`, so 1 at both zeros (and -1 at NaN).
#[inline]
pub(crate) fn abs_slope(x: f32) -> f32 {
    if x >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// `1 / (1 + exp(-x))` without overflow.
#[inline]
fn sigmoid(x: f32) -> f32 {
    crate::activations::sigmoid(x)
}

/// `log(sigmoid(x)) = -softplus(-x)`, with JAX's `logaddexp(-x, 0)`:
/// `max(-x, 0) + log1p(exp(-|x|))`.
#[inline]
fn log_sigmoid(x: f32) -> f32 {
    let m = if -x > 0.0 { -x } else { 0.0 };
    if x.is_nan() {
        return x;
    }
    -(m + math::ln_1p(math::exp(-x.abs())))
}

/// The class a sparse label selects: JAX truncates the `f32` to `int32`, and `one_hot` of
/// an id outside `0..classes` is all zeros.
#[inline]
fn label(y: f32, classes: usize) -> Option<usize> {
    let k = y as i64; // truncation toward zero, NaN -> 0, as XLA's convert
    (0..classes as i64).contains(&k).then_some(k as usize)
}

#[inline]
fn onehot(k: Option<usize>, j: usize) -> f32 {
    if k == Some(j) {
        1.0
    } else {
        0.0
    }
}

/// The log-probabilities of one row, as Keras's categorical cross-entropy forms them.
enum LogProb {
    /// `log_softmax(z) = (z - max) - log(sum(exp(z - max)))`.
    Logits { max: f32, log_sum: f32 },
    /// `log(clip(p / sum(p)))`.
    Probs { sum: f32 },
}

impl LogProb {
    fn new(row: &[f32], from_logits: bool) -> LogProb {
        if from_logits {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|&z| math::exp(z - max)).sum();
            LogProb::Logits {
                max,
                log_sum: math::ln(sum),
            }
        } else {
            LogProb::Probs {
                sum: row.iter().sum(),
            }
        }
    }

    /// The log-probability of the entry whose prediction is `v`.
    #[inline]
    fn at(&self, v: f32) -> f32 {
        match *self {
            LogProb::Logits { max, log_sum } => (v - max) - log_sum,
            LogProb::Probs { sum } => math::ln(clip(v / sum)),
        }
    }
}

/// `d/dz` of `-sum(y log_softmax(z))` times `scale`: `softmax(z) sum(y) - y`.
fn softmax_ce_logits_gradient(z: &[f32], y: impl Fn(usize) -> f32, g: &mut [f32], scale: f32) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for (g, &z) in g.iter_mut().zip(z) {
        *g = math::exp(z - max);
        sum += *g;
    }
    let total: f32 = (0..z.len()).map(&y).sum();
    for (j, g) in g.iter_mut().enumerate() {
        *g = (*g / sum * total - y(j)) * scale;
    }
}

/// `d/dp` of `-sum(y log(clip(p / s)))`, `s = sum(p)`, times `scale`. With `q = p / s` and
/// `u_j = d loss / d q_j = -y_j / clip(q_j) * clip'(q_j)`, the quotient rule gives
/// `d loss / d p_k = (u_k - sum_j u_j q_j) / s`.
fn normalized_ce_gradient(p: &[f32], y: impl Fn(usize) -> f32, g: &mut [f32], scale: f32) {
    let s: f32 = p.iter().sum();
    let mut dot = 0.0f32;
    for (j, (g, &p)) in g.iter_mut().zip(p).enumerate() {
        let q = p / s;
        let yj = y(j);
        // Skip the division where the label is 0: Keras's product y * log(c) has a zero
        // cotangent there whatever c is.
        let u = if yj == 0.0 {
            0.0
        } else {
            -yj / clip(q) * clip_slope(q)
        };
        *g = u;
        dot += u * q;
    }
    for g in g.iter_mut() {
        *g = (*g - dot) / s * scale;
    }
}

/// Decisions Keras takes once per batch rather than per row.
#[derive(Clone, Copy)]
struct Batch {
    /// Hinge losses: every label is 0 or 1, so labels map to `2y - 1`.
    hinge_binary: bool,
}

impl Batch {
    fn of(loss: &Loss, y_true: &[f32]) -> Batch {
        let hinge = matches!(loss, Loss::Hinge | Loss::SquaredHinge);
        Batch {
            hinge_binary: hinge && y_true.iter().all(|&y| y == 0.0 || y == 1.0),
        }
    }

    /// Keras's `convert_binary_labels_to_hinge`.
    #[inline]
    fn hinge_label(self, y: f32) -> f32 {
        if self.hinge_binary {
            2.0 * y - 1.0
        } else {
            y
        }
    }
}

/// One element of binary cross-entropy (before the mean over the row).
#[inline]
fn binary_ce(p: f32, y: f32, from_logits: bool) -> f32 {
    if from_logits {
        -y * log_sigmoid(p) - (1.0 - y) * log_sigmoid(-p)
    } else {
        let c = clip(p);
        -(y * math::ln(c) + (1.0 - y) * math::ln(1.0 - c))
    }
}

/// `d binary_ce / dp`, through the clip as JAX differentiates it.
#[inline]
fn binary_ce_slope(p: f32, y: f32, from_logits: bool) -> f32 {
    if from_logits {
        // d/dz [-y log s(z) - (1-y) log s(-z)] = -y s(-z) + (1-y) s(z). Not folded into
        // s(z) - y: at z = 20, y = 1 that cancels to 0 in f32 where Keras has -2e-9.
        -y * sigmoid(-p) + (1.0 - y) * sigmoid(p)
    } else {
        let c = clip(p);
        (-(y / c) + (1.0 - y) / (1.0 - c)) * clip_slope(p)
    }
}

/// Keras's binary label smoothing: `y * (1 - s) + 0.5 * s`.
#[inline]
fn smooth_binary(y: f32, s: f32) -> f32 {
    y * (1.0 - s) + 0.5 * s
}

/// Keras's categorical label smoothing: `y * (1 - s) + s / classes`.
#[inline]
fn smooth_categorical(y: f32, s: f32, classes: f32) -> f32 {
    y * (1.0 - s) + s / classes
}

/// JAX's `softplus(x) = logaddexp(x, 0) = max(x, 0) + log1p(exp(-|x|))`.
#[inline]
fn softplus(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    x.max(0.0) + math::ln_1p(math::exp(-x.abs()))
}

/// `jnp.clip(x, lo, hi)`.
#[inline]
fn clip_to(x: f32, lo: f32, hi: f32) -> f32 {
    let m = if x < lo { lo } else { x };
    if m > hi {
        hi
    } else {
        m
    }
}

/// JAX's slope of [`clip_to`]: 1 inside, 0 outside, 1/2 on a bound.
#[inline]
fn clip_to_slope(x: f32, lo: f32, hi: f32) -> f32 {
    if x > lo && x < hi {
        1.0
    } else if x == lo || x == hi {
        0.5
    } else if x.is_nan() {
        f32::NAN
    } else {
        0.0
    }
}

/// `max(x, 0)` (NaN stays NaN, as `jnp.maximum`).
#[inline]
fn max0(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// JAX's slope of `max(x, 0)`: 1 above, 1/2 at the tie, 0 below.
#[inline]
fn max0_slope(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x == 0.0 {
        0.5
    } else {
        0.0
    }
}

/// `max(1 - t p, 0)`.
#[inline]
fn hinge_margin(p: f32, t: f32) -> f32 {
    max0(1.0 - t * p)
}

/// MSLE's `log(max(x, 1e-7) + 1)`.
#[inline]
fn msle_log(x: f32) -> f32 {
    math::ln(x.max(EPSILON) + 1.0)
}

/// Keras's L2 normalisation factor `min(rsqrt(sum(x^2)), 1 / 1e-7)`, and whether the cap
/// (not the rsqrt) was taken: 1 for the rsqrt, 0 for the cap, 1/2 on the tie (JAX's
/// `minimum` shares the slope).
fn inv_norm(x: &[f32]) -> (f32, f32) {
    let cap = (1.0f64 / 1e-7) as f32;
    let s: f32 = x.iter().map(|v| v * v).sum();
    let r = 1.0 / math::sqrt(s);
    if r < cap {
        (r, 1.0)
    } else if r == cap {
        (r, 0.5)
    } else {
        (cap, 0.0)
    }
}

/// `d/dp` of `-sum(yn * p r)` times `scale`, `r = min(rsqrt(sum p^2), 1e7)`: the cap's
/// share `-yn / ...` plus the rsqrt's share `-r (yn - (yn . pn) pn)`.
fn cosine_gradient(p: &[f32], y: &[f32], g: &mut [f32], scale: f32) {
    let (ry, _) = inv_norm(y);
    let (r, w) = inv_norm(p);
    let s: f32 = p.iter().map(|v| v * v).sum();
    // d loss / d r = -sum(yn p); d r / d s = -s^(-3/2) / 2 on the rsqrt side.
    let dl_dr: f32 = -p.iter().zip(y).map(|(&p, &y)| (y * ry) * p).sum::<f32>();
    let dr_ds = if w > 0.0 {
        w * (-0.5 / (s * math::sqrt(s)))
    } else {
        // JAX multiplies the zero cotangent by rsqrt's slope, which is infinite at s = 0.
        0.0 * (-0.5 / (s * math::sqrt(s)))
    };
    for ((g, &p), &y) in g.iter_mut().zip(p).zip(y) {
        *g = (-(y * ry) * r + dl_dr * dr_ds * 2.0 * p) * scale;
    }
}

/// `d/dp` of `max(max_j((1 - y_j) p_j) - sum(y p) + 1, 0)` times `scale`. JAX's `max`
/// shares the slope equally among tied maxima, and a `y = 1` entry whose product is 0 can
/// tie too (its share is then multiplied by `1 - y = 0`).
fn categorical_hinge_gradient(p: &[f32], y: &[f32], g: &mut [f32], scale: f32) {
    let pos: f32 = p.iter().zip(y).map(|(&p, &y)| y * p).sum();
    let neg = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| (1.0 - y) * p)
        .fold(f32::NEG_INFINITY, f32::max);
    let outer = max0_slope(neg - pos + 1.0) * scale;
    let ties = p
        .iter()
        .zip(y)
        .filter(|(&p, &y)| (1.0 - y) * p == neg)
        .count()
        .max(1) as f32;
    for ((g, &p), &y) in g.iter_mut().zip(p).zip(y) {
        let at_max = if (1.0 - y) * p == neg {
            1.0 / ties
        } else {
            0.0
        };
        *g = (at_max * (1.0 - y) - y) * outer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve() {
        for &name in Loss::NAMES {
            assert!(Loss::from_name(name).is_some(), "{name}");
        }
        assert_eq!(Loss::from_name("mse"), Some(Loss::MeanSquaredError));
        assert_eq!(Loss::from_name("hinge"), Some(Loss::Hinge));
        assert_eq!(Loss::from_name("hinge_loss"), None);
    }

    #[test]
    fn sparse_matches_one_hot() {
        let p = [0.2, 0.5, 0.3, 0.6, 0.1, 0.3];
        let sparse = Loss::SparseCategoricalCrossentropy { from_logits: false };
        let dense = Loss::CategoricalCrossentropy { from_logits: false };
        let a = sparse.value(&p, &[1.0, 0.0], 3);
        let b = dense.value(&p, &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0], 3);
        assert!((a - b).abs() < 1e-6);
    }

    #[test]
    fn out_of_range_sparse_label_contributes_nothing() {
        let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
        assert_eq!(loss.value(&[1.0, 2.0], &[5.0], 2), 0.0);
        let mut g = [9.0; 2];
        loss.gradient(&[1.0, 2.0], &[-1.0], 2, &mut g);
        assert_eq!(g, [0.0, 0.0]);
    }

    #[test]
    fn empty_batch_is_zero() {
        assert_eq!(Loss::MeanSquaredError.value(&[], &[], 3), 0.0);
    }
}
