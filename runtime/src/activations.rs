//! Every activation function, each beside its derivative, plus [`Activation`]: the name ->
//! function table that layers and the `model!` macro use (like Keras's activations module).
//!
//! Definitions follow Keras 3 (JAX backend) to the letter, including which side of a kink
//! the derivative takes (JAX's conventions: `relu'(0) = 0`, `leaky_relu'(0) = 1`).
//! Functions are written to stay finite where the true value is finite: sigmoid and softplus
//! never overflow, softmax subtracts the maximum, log-softmax goes through log-sum-exp.

use crate::math;

/// SELU's `alpha` (Klambauer et al. 2017), as Keras and JAX define it.
pub const SELU_ALPHA: f32 = 1.673_263_2;
/// SELU's `scale`.
pub const SELU_SCALE: f32 = 1.050_701;

const SQRT_2: f32 = core::f32::consts::SQRT_2;
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

/// `1 / (1 + exp(-x))`, evaluated so that `exp` never overflows.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + math::exp(-x))
    } else {
        let e = math::exp(x);
        e / (1.0 + e)
    }
}
/// Derivative of [`sigmoid`]: `s (1 - s)`.
#[inline]
pub fn sigmoid_derivative(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 - s)
}

/// Keras 3's hard sigmoid: `relu6(x + 3) / 6`.
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
    (0.2 * x + 0.5).clamp(0.0, 1.0)
}
/// Derivative of [`hard_sigmoid_keras2`]: 0.2 inside (-2.5, 2.5), else 0.
#[inline]
pub fn hard_sigmoid_keras2_derivative(x: f32) -> f32 {
    let y = 0.2 * x + 0.5;
    if y > 0.0 && y < 1.0 {
        0.2
    } else {
        0.0
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
/// Derivative of [`softsign`]: `1 / (|x| + 1)^2`.
#[inline]
pub fn softsign_derivative(x: f32) -> f32 {
    let d = x.abs() + 1.0;
    1.0 / (d * d)
}

/// Hyperbolic tangent.
#[inline]
pub fn tanh(x: f32) -> f32 {
    math::tanh(x)
}
/// Derivative of [`tanh`]: `1 - tanh(x)^2`.
#[inline]
pub fn tanh_derivative(x: f32) -> f32 {
    let t = math::tanh(x);
    1.0 - t * t
}

/// `max(x, 0)`.
#[inline]
pub fn relu(x: f32) -> f32 {
    if x > 0.0 || x.is_nan() {
        x
    } else {
        0.0
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
/// A value equal to `threshold` maps to 0 (Keras 3; Keras 2 let it through).
#[inline]
pub fn relu_with(x: f32, negative_slope: f32, max_value: Option<f32>, threshold: f32) -> f32 {
    let mut y = if threshold != 0.0 {
        if x > threshold {
            x
        } else {
            0.0
        }
    } else {
        relu(x)
    };
    if let Some(max) = max_value {
        y = y.clamp(0.0, max);
    }
    if negative_slope != 0.0 {
        y -= negative_slope * relu(threshold - x);
    }
    y
}
/// Derivative of [`relu_with`] with respect to `x`.
#[inline]
pub fn relu_with_derivative(
    x: f32,
    negative_slope: f32,
    max_value: Option<f32>,
    threshold: f32,
) -> f32 {
    let positive = if threshold != 0.0 { x > threshold } else { x > 0.0 };
    let mut d = if positive { 1.0 } else { 0.0 };
    if let Some(max) = max_value {
        let y = if positive { x } else { 0.0 };
        if !(y > 0.0 && y < max) {
            d = 0.0;
        }
    }
    if negative_slope != 0.0 && threshold - x > 0.0 {
        d += negative_slope;
    }
    d
}

/// `min(max(x, 0), 6)`.
#[inline]
pub fn relu6(x: f32) -> f32 {
    relu(x).min(6.0)
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
#[inline]
pub fn thresholded_relu(x: f32, theta: f32) -> f32 {
    if x > theta {
        x
    } else {
        0.0
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

/// Gaussian error linear unit. Exact form `x/2 (1 + erf(x / sqrt 2))` (Keras 3's default), or
/// with `approximate` the tanh form `x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
#[inline]
pub fn gelu(x: f32, approximate: bool) -> f32 {
    if approximate {
        let inner = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
        0.5 * x * (1.0 + math::tanh(inner))
    } else {
        x * (math::erf(x / SQRT_2) + 1.0) / 2.0
    }
}
/// Derivative of [`gelu`].
#[inline]
pub fn gelu_derivative(x: f32, approximate: bool) -> f32 {
    if approximate {
        let inner = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
        let t = math::tanh(inner);
        let d_inner = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
        0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
    } else {
        let cdf = 0.5 * (1.0 + math::erf(x / SQRT_2));
        let pdf = INV_SQRT_2PI * math::exp(-0.5 * x * x);
        if pdf == 0.0 {
            cdf
        } else {
            cdf + x * pdf
        }
    }
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
/// Derivative of [`silu`]: `s + x s (1 - s)` with `s = sigmoid(x)`.
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
/// Derivative of [`hard_silu`].
#[inline]
pub fn hard_silu_derivative(x: f32) -> f32 {
    hard_sigmoid(x) + x * hard_sigmoid_derivative(x)
}

/// Mish: `x tanh(softplus(x))`.
#[inline]
pub fn mish(x: f32) -> f32 {
    x * math::tanh(softplus(x))
}
/// Derivative of [`mish`]: `tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x)`.
#[inline]
pub fn mish_derivative(x: f32) -> f32 {
    let t = math::tanh(softplus(x));
    if x.is_infinite() {
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    t + x * (1.0 - t * t) * sigmoid(x)
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
    /// this is the value for a row of length one (1 and 0).
    #[inline]
    pub fn scalar(&self, x: f32) -> f32 {
        match *self {
            Activation::Linear => x,
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSigmoid => hard_sigmoid(x),
            Activation::HardSigmoidKeras2 => hard_sigmoid_keras2(x),
            Activation::Softmax => 1.0,
            Activation::LogSoftmax => 0.0,
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

    /// Applies the activation in place to `data`, a row-major tensor whose last axis has
    /// `last_axis` values (softmax normalises over that axis; elementwise ones ignore it).
    #[inline]
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
            Activation::Sigmoid => data.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Activation::Tanh => data.iter_mut().for_each(|v| *v = tanh(*v)),
            ref other => data.iter_mut().for_each(|v| *v = other.scalar(*v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
