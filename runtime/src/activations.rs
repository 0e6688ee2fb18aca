//! Every activation function, each beside its derivative, plus [`Activation`]: the name ->
//! function table that layers and the `model!` macro use (like Keras's activations module).
//!
//! Definitions follow Keras 3 (JAX backend) to the letter, checked against golden values
//! from Keras by tests/activations.rs:
//! - Kinks take JAX's conventions: `relu'(0) = 0`, `relu6'(0) = relu6'(6) = 0`,
//!   `leaky_relu'(0) = 1`, and where Keras clips with `jnp.clip` (`relu` with a
//!   `max_value` other than 6, Keras 2's hard sigmoid) a value exactly on the bound gets
//!   half the slope, as JAX's `maximum`/`minimum` split a tie.
//! - NaN in gives NaN out wherever Keras propagates it; where Keras compares first
//!   (`relu`'s threshold, every derivative of the ReLU family) NaN takes the comparison's
//!   false branch as it does in Keras.
//! - Values at +-inf are Keras's, even where its formula gives NaN (`silu(-inf)` is
//!   `-inf * 0`). Derivatives at +-inf are the limits of the derivative, where Keras's
//!   backward pass multiplies inf by 0 and gets NaN (silu, mish, gelu, softsign).
//!
//! `tanh` and `sigmoid` are [`crate::simd_math`]'s branch-free element functions (libm's
//! accuracy, about 2 ulp), so one formula serves a single value and a whole slice: `apply`
//! runs them vectorised ([`tanh_in_place`], [`sigmoid_in_place`]). On the portable path it
//! gives bit for bit what `scalar` gives; on AVX2 and AVX-512 its multiply-adds are fused
//! (one rounding), which can move the last bit or two (`crate::simd_math::MulAdd`).
//!
//! Functions are written to stay finite where the true value is finite: sigmoid and softplus
//! never overflow, softmax subtracts the maximum, log-softmax goes through log-sum-exp, and
//! GELU's tails use `erfc` and the sigmoid instead of `1 + erf` and `1 + tanh`, which cancel.
//! Derivatives use the exact formula (ELU's `alpha exp(x)`, not JAX's `expm1(x) + 1`), so
//! they can differ from Keras's by Keras's own rounding, an ulp of 1 at most.

use crate::math;
pub use crate::simd_math::{sigmoid_in_place, tanh_in_place};

/// SELU's `alpha` (Klambauer et al. 2017), as Keras and JAX define it.
pub const SELU_ALPHA: f32 = 1.673_263_2;
/// SELU's `scale`.
pub const SELU_SCALE: f32 = 1.050_701;

const FRAC_1_SQRT_2: f32 = core::f32::consts::FRAC_1_SQRT_2;
/// sqrt(2 / pi), the constant of GELU's tanh approximation.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// 1 / sqrt(2 pi), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// `x`, unchanged.
#[inline]
pub fn linear(x: f32) -> f32 {
    x
}
/// Derivative of [`linear`]: 1.
#[inline]
pub fn linear_derivative(_x: f32) -> f32 {
    1.0
}

/// `1 / (1 + exp(-x))`, evaluated so that `exp` never overflows: `1 / (1 + e)` for
/// `x >= 0`, `e / (1 + e)` below, `e = exp(-|x|)` ([`crate::simd_math::sigmoid`]).
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    crate::simd_math::sigmoid(x)
}
/// Derivative of [`sigmoid`]: `s (1 - s)`.
#[inline]
pub fn sigmoid_derivative(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 - s)
}

/// Keras 3's hard sigmoid: `relu6(x + 3) / 6`. NaN stays NaN.
#[inline]
pub fn hard_sigmoid(x: f32) -> f32 {
    relu6(x + 3.0) / 6.0
}
/// Derivative of [`hard_sigmoid`]: `1/6` on the open interval (-3, 3), else 0.
#[inline]
pub fn hard_sigmoid_derivative(x: f32) -> f32 {
    relu6_derivative(x + 3.0) / 6.0
}

/// Keras 2's hard sigmoid, `clip(0.2 x + 0.5, 0, 1)`; Keras 3 changed the slope to 1/6.
#[inline]
pub fn hard_sigmoid_keras2(x: f32) -> f32 {
    clip(0.2 * x + 0.5, 0.0, 1.0)
}
/// Derivative of [`hard_sigmoid_keras2`]: 0.2 where `0.2 x + 0.5` lies strictly inside
/// (0, 1), 0.1 where it rounds to exactly 0 or 1 (`jnp.clip`'s tie: JAX gives each side of
/// a tie in `maximum`/`minimum` half the gradient), else 0.
#[inline]
pub fn hard_sigmoid_keras2_derivative(x: f32) -> f32 {
    0.2 * clip_derivative(0.2 * x + 0.5, 0.0, 1.0)
}

/// `jnp.clip(y, lo, hi)` = `minimum(maximum(y, lo), hi)`: NaN stays NaN (unlike a pair of
/// `f32::max`/`f32::min`), and `hi < lo` gives `hi` instead of panicking like `f32::clamp`.
#[inline]
fn clip(y: f32, lo: f32, hi: f32) -> f32 {
    let y = if y < lo { lo } else { y };
    if y > hi {
        hi
    } else {
        y
    }
}
/// The derivative of [`clip`] in `y`, as JAX takes it: 1 strictly inside, 0 outside (and
/// for NaN), and 1/2 for each bound `y` equals, because JAX's `maximum` and `minimum` split
/// the gradient of a tie evenly between their two arguments.
#[inline]
fn clip_derivative(y: f32, lo: f32, hi: f32) -> f32 {
    let tie = |a: f32, b: f32| if a == b { 0.5 } else { 1.0 };
    if y < lo || y.is_nan() {
        return 0.0;
    }
    let low = tie(y, lo);
    let y = if y > lo { y } else { lo };
    if y > hi {
        0.0
    } else {
        low * tie(y, hi)
    }
}

/// `log(1 + exp(x))`, as `max(x, 0) + log1p(exp(-|x|))` so it neither overflows nor loses
/// the tiny values of large negative `x`.
#[inline]
pub fn softplus(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    x.max(0.0) + math::ln_1p(math::exp(-x.abs()))
}
/// Derivative of [`softplus`]: `sigmoid(x)`.
#[inline]
pub fn softplus_derivative(x: f32) -> f32 {
    sigmoid(x)
}

/// `x / (|x| + 1)`.
#[inline]
pub fn softsign(x: f32) -> f32 {
    x / (x.abs() + 1.0)
}
/// Derivative of [`softsign`]: `1 / (|x| + 1)^2`; 0 at +-inf (Keras gives NaN there, from
/// its quotient rule's inf / inf).
#[inline]
pub fn softsign_derivative(x: f32) -> f32 {
    let d = x.abs() + 1.0;
    1.0 / (d * d)
}

/// Hyperbolic tangent ([`crate::simd_math::tanh`]).
#[inline]
pub fn tanh(x: f32) -> f32 {
    crate::simd_math::tanh(x)
}
/// Derivative of [`tanh`]: `1 - tanh(x)^2`, as `(1 + t)(1 - t)` like JAX, which keeps the
/// small values near saturation that `1 - t * t` rounds away.
#[inline]
pub fn tanh_derivative(x: f32) -> f32 {
    let t = tanh(x);
    (1.0 + t) * (1.0 - t)
}

/// `max(x, 0)`.
#[inline]
pub fn relu(x: f32) -> f32 {
    // One compare-and-select that keeps NaN (the comparison is false), as JAX does; the
    // only visible difference from `max(x, 0)` is `relu(-0.0) = -0.0`, which equals 0.
    if 0.0 > x {
        0.0
    } else {
        x
    }
}
/// Derivative of [`relu`]: 1 for `x > 0`, else 0 (0 at the kink, as in JAX).
#[inline]
pub fn relu_derivative(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// Keras 3's general ReLU:
/// `f(x) = clip(x if x > threshold else 0, 0, max_value) - negative_slope * relu(threshold - x)`.
///
/// With the defaults (`negative_slope = 0`, no `max_value`, `threshold = 0`) it is [`relu`].
/// A value equal to `threshold` maps to 0 (Keras 3; Keras 2 let it through). Like Keras's
/// `ReLU.static_call`, a nonzero slope with neither `max_value` nor `threshold` is
/// [`leaky_relu`], and `max_value = 6` with no threshold is [`relu6`]: the paths differ at
/// the kinks (see [`relu_with_derivative`]) and for NaN (`x > threshold` is false for NaN,
/// so a nonzero threshold maps NaN to 0, or to NaN through the slope term).
#[inline]
pub fn relu_with(x: f32, negative_slope: f32, max_value: Option<f32>, threshold: f32) -> f32 {
    if negative_slope != 0.0 && max_value.is_none() && threshold == 0.0 {
        return leaky_relu(x, negative_slope);
    }
    let mut y = if threshold != 0.0 {
        if x > threshold {
            x
        } else {
            0.0
        }
    } else if max_value == Some(6.0) {
        relu6(x)
    } else {
        relu(x)
    };
    if let Some(max) = max_value.filter(|_| !relu6_path(max_value, threshold)) {
        y = clip(y, 0.0, max);
    }
    if negative_slope != 0.0 {
        y -= negative_slope * relu(threshold - x);
    }
    y
}
/// Derivative of [`relu_with`] with respect to `x`, kinks as JAX differentiates Keras's
/// code: the leaky path gives 1 at 0; the relu6 path 0 at 0 and 6; otherwise 0 at 0 and at
/// `threshold`, and half the slope where the clip to `[0, max_value]` hits a bound exactly
/// (`jnp.clip`'s tie). The slope term adds `negative_slope` for `x < threshold`.
#[inline]
pub fn relu_with_derivative(
    x: f32,
    negative_slope: f32,
    max_value: Option<f32>,
    threshold: f32,
) -> f32 {
    if negative_slope != 0.0 && max_value.is_none() && threshold == 0.0 {
        return leaky_relu_derivative(x, negative_slope);
    }
    let (y, mut d) = if threshold != 0.0 {
        if x > threshold {
            (x, 1.0)
        } else {
            (0.0, 0.0)
        }
    } else if max_value == Some(6.0) {
        (relu6(x), relu6_derivative(x))
    } else {
        (relu(x), relu_derivative(x))
    };
    if let Some(max) = max_value.filter(|_| !relu6_path(max_value, threshold)) {
        d *= clip_derivative(y, 0.0, max);
    }
    if negative_slope != 0.0 && threshold - x > 0.0 {
        d += negative_slope;
    }
    d
}

/// Whether Keras's `relu` takes its `relu6` shortcut, which clips at 6 without `jnp.clip`.
#[inline]
fn relu6_path(max_value: Option<f32>, threshold: f32) -> bool {
    max_value == Some(6.0) && threshold == 0.0
}

/// `min(max(x, 0), 6)`. NaN stays NaN (`f32::min` would return 6).
#[inline]
pub fn relu6(x: f32) -> f32 {
    let y = relu(x);
    if y > 6.0 {
        6.0
    } else {
        y
    }
}
/// Derivative of [`relu6`]: 1 on the open interval (0, 6), else 0.
#[inline]
pub fn relu6_derivative(x: f32) -> f32 {
    if x > 0.0 && x < 6.0 {
        1.0
    } else {
        0.0
    }
}

/// `x` for `x >= 0`, else `negative_slope * x`.
#[inline]
pub fn leaky_relu(x: f32, negative_slope: f32) -> f32 {
    if x >= 0.0 {
        x
    } else {
        negative_slope * x
    }
}
/// Derivative of [`leaky_relu`]: 1 for `x >= 0`, else `negative_slope`.
#[inline]
pub fn leaky_relu_derivative(x: f32, negative_slope: f32) -> f32 {
    if x >= 0.0 {
        1.0
    } else {
        negative_slope
    }
}

/// `x` for `x > theta`, else 0 (Keras 2's `ThresholdedReLU`).
///
/// Computed as Keras 2 does, `x * cast(x > theta)`, so NaN and `-inf` give NaN.
#[inline]
pub fn thresholded_relu(x: f32, theta: f32) -> f32 {
    if x > theta {
        x
    } else {
        0.0 * x
    }
}
/// Derivative of [`thresholded_relu`]: 1 for `x > theta`, else 0.
#[inline]
pub fn thresholded_relu_derivative(x: f32, theta: f32) -> f32 {
    if x > theta {
        1.0
    } else {
        0.0
    }
}

/// `x` for `x > 0`, else `alpha (exp(x) - 1)`.
#[inline]
pub fn elu(x: f32, alpha: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        alpha * math::exp_m1(x)
    }
}
/// Derivative of [`elu`]: 1 for `x > 0`, else `alpha exp(x)`.
#[inline]
pub fn elu_derivative(x: f32, alpha: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else {
        alpha * math::exp(x)
    }
}

/// `scale * elu(x, alpha)` with SELU's fixed constants.
#[inline]
pub fn selu(x: f32) -> f32 {
    SELU_SCALE * elu(x, SELU_ALPHA)
}
/// Derivative of [`selu`].
#[inline]
pub fn selu_derivative(x: f32) -> f32 {
    SELU_SCALE * elu_derivative(x, SELU_ALPHA)
}

/// Gaussian error linear unit. Exact form `x/2 erfc(-x / sqrt 2)` = `x Phi(x)` (Keras 3's
/// default, JAX's formula), or with `approximate` the tanh form
/// `x/2 (1 + tanh(z))`, `z = sqrt(2/pi) (x + 0.044715 x^3)`.
///
/// The tanh form is evaluated as `x sigmoid(2 z)`, the same function, because `1 + tanh(z)`
/// cancels for negative `z`: Keras's values there carry an error of an ulp of 1 (4% at
/// x = -4.4), kiln's do not.
#[inline]
pub fn gelu(x: f32, approximate: bool) -> f32 {
    if approximate {
        x * sigmoid(2.0 * gelu_tanh_arg(x))
    } else {
        0.5 * x * math::erfc(-x * FRAC_1_SQRT_2)
    }
}
/// Derivative of [`gelu`]: `Phi(x) + x phi(x)` (exact), or for the tanh form
/// `s + 2 x s (1 - s) z'` with `s = sigmoid(2 z)`. At +-inf, the limits 1 and 0 (Keras
/// multiplies inf by 0 there and gets NaN).
#[inline]
pub fn gelu_derivative(x: f32, approximate: bool) -> f32 {
    if approximate {
        let s = sigmoid(2.0 * gelu_tanh_arg(x));
        let ds = s * (1.0 - s);
        if ds == 0.0 {
            // Saturated (or x = +-inf, or z' overflowed): x ds z' is 0, not inf * 0.
            return s;
        }
        let dz = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
        s + 2.0 * x * ds * dz
    } else {
        let cdf = 0.5 * math::erfc(-x * FRAC_1_SQRT_2);
        if x.is_infinite() {
            return cdf;
        }
        cdf + x * INV_SQRT_2PI * math::exp(-0.5 * x * x)
    }
}
/// GELU's tanh argument `sqrt(2/pi) (x + 0.044715 x^3)`.
#[inline]
fn gelu_tanh_arg(x: f32) -> f32 {
    SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)
}

/// `exp(x)`.
#[inline]
pub fn exponential(x: f32) -> f32 {
    math::exp(x)
}
/// Derivative of [`exponential`]: `exp(x)`.
#[inline]
pub fn exponential_derivative(x: f32) -> f32 {
    math::exp(x)
}

/// SiLU, also called swish: `x sigmoid(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}
/// Derivative of [`silu`]: `s + x s (1 - s)` with `s = sigmoid(x)`; 1 and 0 at +-inf
/// (Keras gives NaN there, from inf * 0).
#[inline]
pub fn silu_derivative(x: f32) -> f32 {
    let s = sigmoid(x);
    if x.is_infinite() {
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    s + x * s * (1.0 - s)
}

/// Hard SiLU (hard swish): `x hard_sigmoid(x)`.
#[inline]
pub fn hard_silu(x: f32) -> f32 {
    x * hard_sigmoid(x)
}
/// Derivative of [`hard_silu`]: `hard_sigmoid(x) + x hard_sigmoid'(x)`; 1 and 0 at +-inf
/// (where `x * 0` would be NaN; Keras's backward pass gives the same limits).
#[inline]
pub fn hard_silu_derivative(x: f32) -> f32 {
    if x.is_infinite() {
        return hard_sigmoid(x);
    }
    hard_sigmoid(x) + x * hard_sigmoid_derivative(x)
}

/// Mish: `x tanh(softplus(x))`.
#[inline]
pub fn mish(x: f32) -> f32 {
    x * math::tanh(softplus(x))
}
/// Derivative of [`mish`]: `tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x)`, `sp = softplus(x)`;
/// 1 and 0 at +-inf (Keras gives NaN there, from inf * 0).
#[inline]
pub fn mish_derivative(x: f32) -> f32 {
    let t = math::tanh(softplus(x));
    if x.is_infinite() {
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    t + x * ((1.0 + t) * (1.0 - t)) * sigmoid(x)
}

/// Softmax over each contiguous run of `axis_len` values of `data`, in place.
///
/// `data` holds rows of length `axis_len` back to back (the last axis of a row-major tensor).
/// The maximum is subtracted first, so large inputs do not overflow.
pub fn softmax_in_place(data: &mut [f32], axis_len: usize) {
    if axis_len == 0 {
        return;
    }
    for row in data.chunks_exact_mut(axis_len) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = math::exp(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// Log-softmax over each contiguous run of `axis_len` values, in place:
/// `x - max - log(sum(exp(x - max)))`.
pub fn log_softmax_in_place(data: &mut [f32], axis_len: usize) {
    if axis_len == 0 {
        return;
    }
    for row in data.chunks_exact_mut(axis_len) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| math::exp(*v - max)).sum();
        let log_sum = math::ln(sum);
        for v in row.iter_mut() {
            *v = *v - max - log_sum;
        }
    }
}

/// Backward pass of softmax for one row: given the softmax output `y` and the gradient
/// `dy` with respect to it, writes the gradient with respect to the input into `dx`:
/// `dx = y * (dy - sum(dy * y))`.
pub fn softmax_vjp(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
    for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
        *dx = y * (dy - dot);
    }
}

/// Backward pass of log-softmax for one row, from its output `y` (log-probabilities):
/// `dx = dy - exp(y) * sum(dy)`.
pub fn log_softmax_vjp(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let sum: f32 = dy.iter().sum();
    for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
        *dx = dy - math::exp(y) * sum;
    }
}

/// An activation function picked by name, with its arguments: what `activation = "..."`
/// and `Activation("...")` resolve to.
///
/// The `model!` macro resolves the name at compile time and emits a constant of this type,
/// so the `match` in [`Activation::apply`] folds away in optimised builds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// [`linear`]
    Linear,
    /// [`sigmoid`]
    Sigmoid,
    /// [`hard_sigmoid`] (Keras 3 form)
    HardSigmoid,
    /// [`hard_sigmoid_keras2`]
    HardSigmoidKeras2,
    /// [`softmax_in_place`] over the last axis
    Softmax,
    /// [`log_softmax_in_place`] over the last axis
    LogSoftmax,
    /// [`softplus`]
    Softplus,
    /// [`softsign`]
    Softsign,
    /// [`tanh`]
    Tanh,
    /// [`relu_with`]; `"relu"` is `Relu { negative_slope: 0.0, max_value: None, threshold: 0.0 }`
    Relu {
        /// Slope below the threshold.
        negative_slope: f32,
        /// Upper clip, if any.
        max_value: Option<f32>,
        /// Values at or below it are not passed through.
        threshold: f32,
    },
    /// [`relu6`]
    Relu6,
    /// [`leaky_relu`]; `"leaky_relu"` has Keras 3's default slope 0.2
    LeakyRelu {
        /// Slope for negative inputs.
        negative_slope: f32,
    },
    /// [`thresholded_relu`]
    ThresholdedRelu {
        /// Values at or below it map to 0.
        theta: f32,
    },
    /// [`elu`]
    Elu {
        /// Scale of the negative part.
        alpha: f32,
    },
    /// [`selu`]
    Selu,
    /// [`gelu`]
    Gelu {
        /// Use the tanh approximation instead of the exact erf form.
        approximate: bool,
    },
    /// [`exponential`]
    Exponential,
    /// [`silu`] (also `"swish"`)
    Silu,
    /// [`hard_silu`] (also `"hard_swish"`)
    HardSilu,
    /// [`mish`]
    Mish,
}

impl Activation {
    /// Plain ReLU.
    pub const RELU: Activation = Activation::Relu {
        negative_slope: 0.0,
        max_value: None,
        threshold: 0.0,
    };

    /// Every name `from_name` accepts, in the order Keras documents them.
    pub const NAMES: &'static [&'static str] = &[
        "linear",
        "sigmoid",
        "hard_sigmoid",
        "hard_sigmoid_keras2",
        "softmax",
        "log_softmax",
        "softplus",
        "softsign",
        "tanh",
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "exponential",
        "silu",
        "swish",
        "hard_silu",
        "hard_swish",
        "mish",
    ];

    /// The activation Keras 3 means by `name`, with Keras's default arguments.
    pub fn from_name(name: &str) -> Option<Activation> {
        Some(match name {
            "linear" => Activation::Linear,
            "sigmoid" => Activation::Sigmoid,
            "hard_sigmoid" => Activation::HardSigmoid,
            "hard_sigmoid_keras2" => Activation::HardSigmoidKeras2,
            "softmax" => Activation::Softmax,
            "log_softmax" => Activation::LogSoftmax,
            "softplus" => Activation::Softplus,
            "softsign" => Activation::Softsign,
            "tanh" => Activation::Tanh,
            "relu" => Activation::RELU,
            "relu6" => Activation::Relu6,
            "leaky_relu" => Activation::LeakyRelu {
                negative_slope: 0.2,
            },
            "elu" => Activation::Elu { alpha: 1.0 },
            "selu" => Activation::Selu,
            "gelu" => Activation::Gelu { approximate: false },
            "exponential" => Activation::Exponential,
            "silu" | "swish" => Activation::Silu,
            "hard_silu" | "hard_swish" => Activation::HardSilu,
            "mish" => Activation::Mish,
            _ => return None,
        })
    }

    /// True for activations that mix values along the last axis (softmax, log-softmax); all
    /// others act on each value alone.
    pub fn is_elementwise(&self) -> bool {
        !matches!(self, Activation::Softmax | Activation::LogSoftmax)
    }

    /// The activation of one value. For softmax and log-softmax, which need a whole row,
    /// this is the value for a row of length one (1 and 0, NaN for a non-finite value).
    #[inline]
    pub fn scalar(&self, x: f32) -> f32 {
        match *self {
            Activation::Linear => x,
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSigmoid => hard_sigmoid(x),
            Activation::HardSigmoidKeras2 => hard_sigmoid_keras2(x),
            // Keras subtracts the row's maximum first: inf - inf and NaN give NaN.
            Activation::Softmax if x.is_finite() => 1.0,
            Activation::LogSoftmax if x.is_finite() => 0.0,
            Activation::Softmax | Activation::LogSoftmax => f32::NAN,
            Activation::Softplus => softplus(x),
            Activation::Softsign => softsign(x),
            Activation::Tanh => tanh(x),
            Activation::Relu {
                negative_slope,
                max_value,
                threshold,
            } => relu_with(x, negative_slope, max_value, threshold),
            Activation::Relu6 => relu6(x),
            Activation::LeakyRelu { negative_slope } => leaky_relu(x, negative_slope),
            Activation::ThresholdedRelu { theta } => thresholded_relu(x, theta),
            Activation::Elu { alpha } => elu(x, alpha),
            Activation::Selu => selu(x),
            Activation::Gelu { approximate } => gelu(x, approximate),
            Activation::Exponential => exponential(x),
            Activation::Silu => silu(x),
            Activation::HardSilu => hard_silu(x),
            Activation::Mish => mish(x),
        }
    }

    /// The derivative at `x` of an elementwise activation (`None` for softmax and
    /// log-softmax, whose gradient needs the whole row: see [`softmax_vjp`]).
    #[inline]
    pub fn derivative(&self, x: f32) -> Option<f32> {
        Some(match *self {
            Activation::Linear => 1.0,
            Activation::Sigmoid => sigmoid_derivative(x),
            Activation::HardSigmoid => hard_sigmoid_derivative(x),
            Activation::HardSigmoidKeras2 => hard_sigmoid_keras2_derivative(x),
            Activation::Softmax | Activation::LogSoftmax => return None,
            Activation::Softplus => softplus_derivative(x),
            Activation::Softsign => softsign_derivative(x),
            Activation::Tanh => tanh_derivative(x),
            Activation::Relu {
                negative_slope,
                max_value,
                threshold,
            } => relu_with_derivative(x, negative_slope, max_value, threshold),
            Activation::Relu6 => relu6_derivative(x),
            Activation::LeakyRelu { negative_slope } => leaky_relu_derivative(x, negative_slope),
            Activation::ThresholdedRelu { theta } => thresholded_relu_derivative(x, theta),
            Activation::Elu { alpha } => elu_derivative(x, alpha),
            Activation::Selu => selu_derivative(x),
            Activation::Gelu { approximate } => gelu_derivative(x, approximate),
            Activation::Exponential => exponential_derivative(x),
            Activation::Silu => silu_derivative(x),
            Activation::HardSilu => hard_silu_derivative(x),
            Activation::Mish => mish_derivative(x),
        })
    }

    /// Backward pass in place: turns `dy` (the loss gradient with respect to this
    /// activation's output `y`) into the gradient with respect to its input `x`. Elementwise
    /// activations use `x`; softmax and log-softmax use `y` row by row (`last_axis` values).
    #[inline(always)]
    pub fn backward(&self, x: &[f32], y: &[f32], dy: &mut [f32], last_axis: usize) {
        match *self {
            Activation::Linear => {}
            Activation::Softmax | Activation::LogSoftmax => {
                if last_axis == 0 {
                    return;
                }
                for (y, dy) in y
                    .chunks_exact(last_axis)
                    .zip(dy.chunks_exact_mut(last_axis))
                {
                    if *self == Activation::Softmax {
                        let dot: f32 = y.iter().zip(dy.iter()).map(|(a, b)| a * b).sum();
                        for (d, &p) in dy.iter_mut().zip(y) {
                            *d = p * (*d - dot);
                        }
                    } else {
                        let sum: f32 = dy.iter().sum();
                        for (d, &l) in dy.iter_mut().zip(y) {
                            *d -= crate::math::exp(l) * sum;
                        }
                    }
                }
            }
            Activation::Relu {
                negative_slope: 0.0,
                max_value: None,
                threshold: 0.0,
            } => {
                // The common case as one branch-free select per value.
                for (d, &x) in dy.iter_mut().zip(x) {
                    *d = if x > 0.0 { *d } else { 0.0 };
                }
            }
            ref elementwise => {
                for (d, &x) in dy.iter_mut().zip(x) {
                    *d *= elementwise.derivative(x).unwrap_or(1.0);
                }
            }
        }
    }

    /// [`Activation::apply`] of `src` written into `dst` (the same length), without copying
    /// `src` first where the activation maps each value alone: a training pass keeps the
    /// pre-activation as its cache and needs the activation beside it. The same bits as
    /// copying, then `apply`.
    #[inline(always)]
    pub fn apply_from(&self, src: &[f32], dst: &mut [f32], last_axis: usize) {
        match *self {
            Activation::Relu {
                negative_slope: 0.0,
                max_value: None,
                threshold: 0.0,
            } => {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = relu(s);
                }
            }
            Activation::Linear
            | Activation::Softmax
            | Activation::LogSoftmax
            | Activation::Sigmoid
            | Activation::Tanh => {
                dst.copy_from_slice(src);
                self.apply(dst, last_axis);
            }
            ref other => {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = other.scalar(s);
                }
            }
        }
    }

    /// Applies the activation in place to `data`, a row-major tensor whose last axis has
    /// `last_axis` values (softmax normalises over that axis; elementwise ones ignore it).
    #[inline(always)]
    pub fn apply(&self, data: &mut [f32], last_axis: usize) {
        match *self {
            Activation::Linear => {}
            Activation::Softmax => softmax_in_place(data, last_axis),
            Activation::LogSoftmax => log_softmax_in_place(data, last_axis),
            Activation::Relu {
                negative_slope: 0.0,
                max_value: None,
                threshold: 0.0,
            } => data.iter_mut().for_each(|v| *v = relu(*v)),
            Activation::Sigmoid => sigmoid_in_place(data),
            Activation::Tanh => tanh_in_place(data),
            ref other => data.iter_mut().for_each(|v| *v = other.scalar(*v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `apply_from` writes what copying and `apply` give, bit for bit, for every activation
    /// (and a parameterised relu), on rows with infinities and NaN.
    #[test]
    fn apply_from_gives_the_bits_of_copy_then_apply() {
        let src: Vec<f32> = (0..36)
            .map(|i| match i {
                7 => f32::INFINITY,
                13 => f32::NEG_INFINITY,
                22 => f32::NAN,
                _ => (i as f32 - 17.0) * 0.37,
            })
            .collect();
        let mut activations: Vec<Activation> = Activation::NAMES
            .iter()
            .filter_map(|name| Activation::from_name(name))
            .collect();
        activations.push(Activation::Relu {
            negative_slope: 0.1,
            max_value: Some(2.0),
            threshold: 0.5,
        });
        for activation in activations {
            let mut want = src.clone();
            activation.apply(&mut want, 6);
            let mut got = vec![f32::NAN; src.len()];
            activation.apply_from(&src, &mut got, 6);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{activation:?}");
        }
    }

    #[test]
    fn every_name_resolves() {
        for name in Activation::NAMES {
            assert!(Activation::from_name(name).is_some(), "{name}");
        }
        assert!(Activation::from_name("rleu").is_none());
    }

    #[test]
    fn softmax_is_stable_for_huge_inputs() {
        let mut row = [1e4_f32, 1e4 - 1.0, -1e4];
        softmax_in_place(&mut row, 3);
        assert!(row.iter().all(|v| v.is_finite()));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let mut log = [1e4_f32, 0.0];
        log_softmax_in_place(&mut log, 2);
        assert_eq!(log[0], 0.0);
        assert_eq!(log[1], -1e4);
    }

    #[test]
    fn sigmoid_and_softplus_do_not_overflow() {
        for x in [-1e4_f32, -100.0, -88.0, 88.0, 100.0, 1e4] {
            assert!(sigmoid(x).is_finite() && softplus(x).is_finite(), "{x}");
        }
        assert_eq!(softplus(1e4), 1e4);
    }

    #[test]
    fn keras3_relu_threshold_is_exclusive() {
        assert_eq!(relu_with(1.0, 0.0, None, 1.0), 0.0);
        assert_eq!(relu_with(1.5, 0.0, None, 1.0), 1.5);
        assert_eq!(relu_with(-2.0, 0.5, None, 0.0), -1.0);
        assert_eq!(relu_with(10.0, 0.0, Some(6.0), 0.0), 6.0);
    }
}
