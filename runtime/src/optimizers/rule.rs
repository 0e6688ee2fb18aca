//! [`ElementwiseRule`]: one step of an optimizer as plain numbers plus arithmetic, apart from
//! the optimizer and its state table, so that pieces of a weight can be updated on several
//! threads at once (`fit` with `FitOptions::threads`).
//!
//! Every kiln optimizer but [`super::Lamb`] (whose trust ratio is a ratio of whole-weight
//! norms) is element-wise: a value's update reads only its own gradient and state, so
//! updating a weight piece by piece gives exactly the values of one whole update. Each
//! optimizer's `update` runs its rule on the whole weight; there is one copy of every
//! update formula.

use crate::math;

/// At most this many state buffers per weight value (Adam with AMSGrad: `m`, `v`,
/// `v_hat`; centered RMSprop with momentum: `v`, `m`, `a`).
pub const MAX_STATE_PARTS: usize = 3;

/// Bits of `f32::INFINITY`: a magnitude's bits at or above it are not finite (or, for a
/// state part that must stay non-negative, negative).
pub(crate) const NON_FINITE: u32 = 0x7f80_0000;

/// Above this, a bound no longer proves a value finite: `f32::MAX` is 3.4e38, and the margin
/// covers the rounding of the few operations each bound adds up.
pub(crate) const LIMIT: f64 = 1e37;

/// Each bound carried from one step to the next is widened by this, for the rounding of the
/// step's operations (each rule below rounds at most 8 times on the way to a value, each
/// time by at most 2^-24 relative): the carried bounds stay upper bounds however many steps
/// they are carried over.
const ROUNDING: f64 = 1.0 + 1e-6;

/// Upper bounds on the magnitudes of the values of a training step: the largest `|w|`
/// over the weights, and per state part (see [`ElementwiseRule::state_parts`]) the largest
/// `|value|`. What `fit`'s overflow guard (`training::step::Guard`) bounds each step with;
/// infinity for a value that is not finite (or, for Adam's `v` and `v_hat`, negative).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Magnitudes {
    /// The weights' largest magnitude, at most.
    pub weights: f64,
    /// Each state part's, at most.
    pub parts: [f64; MAX_STATE_PARTS],
}

/// The largest `|x|` over `values`, as bits (an integer maximum of the bits without the sign
/// vectorises, and orders NaN and infinity above every finite value). Inlined, so that
/// inside `crate::isa::dispatch` it runs on the CPU's vectors (a default x86-64 build has
/// no 32-bit integer maximum of its own: SSE2).
#[inline(always)]
pub(crate) fn magnitude(values: &[f32]) -> u32 {
    values
        .iter()
        .fold(0, |top, &x| top.max(x.to_bits() & 0x7fff_ffff))
}

/// The value of a magnitude's bits as a bound: infinity when not finite.
pub(crate) fn bound_of(bits: u32) -> f64 {
    if bits >= NON_FINITE {
        f64::INFINITY
    } else {
        f64::from(f32::from_bits(bits))
    }
}

/// One step's update rule of an element-wise optimizer, with everything that depends on
/// the step (Adam's bias-corrected step size) already computed. Fields are the optimizer's
/// hyperparameters of the same names (documented there).
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)] // fields mirror the documented fields of each optimizer
pub enum ElementwiseRule {
    /// [`super::Sgd`]: velocity `m` when `momentum > 0`.
    Sgd {
        learning_rate: f32,
        momentum: f32,
        nesterov: bool,
        weight_decay: Option<f32>,
    },
    /// [`super::Adam`] and [`super::AdamW`]: `m`, `v` (and `v_hat` with AMSGrad).
    Adam {
        learning_rate: f32,
        /// `lr · sqrt(1 - beta_2^t) / (1 - beta_1^t)` for this step `t`.
        alpha: f32,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        amsgrad: bool,
        weight_decay: Option<f32>,
    },
    /// [`super::RmsProp`]: `v`, then `m` (momentum > 0) and `a` (centered).
    RmsProp {
        learning_rate: f32,
        rho: f32,
        momentum: f32,
        epsilon: f32,
        centered: bool,
        weight_decay: Option<f32>,
    },
    /// [`super::Adagrad`]: the accumulator.
    Adagrad {
        learning_rate: f32,
        epsilon: f32,
        initial_accumulator_value: f32,
        weight_decay: Option<f32>,
    },
    /// [`super::Nadam`]: `m`, `v`.
    Nadam {
        learning_rate: f32,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        /// `beta_1 * (1 - 0.5 * 0.96^t)` for this step `t`.
        u_t: f32,
        /// The same for `t + 1`.
        u_t_1: f32,
        /// The product of `u` over steps `1..=t`.
        u_product_t: f32,
        /// `u_product_t * u_t_1`.
        u_product_t_1: f32,
        /// `beta_2^t`.
        beta_2_power: f32,
        weight_decay: Option<f32>,
    },
    /// [`super::Adamax`]: `m`, the infinity norm `u`.
    Adamax {
        learning_rate: f32,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        /// `beta_1^t`.
        beta_1_power: f32,
        weight_decay: Option<f32>,
    },
    /// [`super::Adadelta`]: the gradient and update accumulators.
    Adadelta {
        learning_rate: f32,
        rho: f32,
        epsilon: f32,
        weight_decay: Option<f32>,
    },
    /// [`super::Ftrl`]: the accumulator (from `initial_accumulator_value`), the linear term.
    Ftrl {
        learning_rate: f32,
        learning_rate_power: f32,
        initial_accumulator_value: f32,
        l1_regularization_strength: f32,
        /// `l2_regularization_strength + beta / (2 * lr)`.
        l2_reg: f32,
        l2_shrinkage_regularization_strength: f32,
        weight_decay: Option<f32>,
    },
    /// [`super::Lion`]: the momentum.
    Lion {
        learning_rate: f32,
        beta_1: f32,
        beta_2: f32,
        weight_decay: Option<f32>,
    },
}

impl ElementwiseRule {
    /// State buffers per weight value, and the value the first starts from (the others
    /// start at 0).
    pub fn state_parts(&self) -> (usize, f32) {
        match *self {
            ElementwiseRule::Sgd { momentum, .. } => (usize::from(momentum != 0.0), 0.0),
            ElementwiseRule::Adam { amsgrad, .. } => (if amsgrad { 3 } else { 2 }, 0.0),
            ElementwiseRule::RmsProp {
                momentum, centered, ..
            } => (1 + usize::from(momentum > 0.0) + usize::from(centered), 0.0),
            ElementwiseRule::Adagrad {
                initial_accumulator_value,
                ..
            } => (1, initial_accumulator_value),
            ElementwiseRule::Nadam { .. }
            | ElementwiseRule::Adamax { .. }
            | ElementwiseRule::Adadelta { .. } => (2, 0.0),
            ElementwiseRule::Ftrl {
                initial_accumulator_value,
                ..
            } => (2, initial_accumulator_value),
            ElementwiseRule::Lion { .. } => (1, 0.0),
        }
    }

    /// Updates `params` from `grads`. `state` holds the [`state_parts`](Self::state_parts)
    /// buffers of these values (each as long as `params`; unused entries empty).
    ///
    /// Runs compiled for AVX2 + FMA where the CPU has them (`crate::isa`), whatever the
    /// build's target: a default x86-64 build would otherwise run these loops on SSE2's four
    /// lanes (RMSprop's digits epoch: 1.96 ms that way, 1.74 ms this way; BENCHMARKS.md,
    /// "Training: one epoch against the peak"). Adam's usual rule runs its own 8-lane loop
    /// (`AdamStep`). Same bits on every path: square root and division are correctly
    /// rounded, and nothing is reordered or fused.
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; MAX_STATE_PARTS]) {
        #[cfg(target_arch = "x86_64")]
        if crate::isa::isa() >= crate::isa::Isa::Avx2Fma
            && crate::isa::available().contains(&crate::isa::Isa::Avx2Fma)
        {
            // SAFETY: `available` lists `Avx2Fma` only when the CPU has AVX2 and FMA.
            unsafe { self.apply_avx2(params, grads, state) };
            return;
        }
        self.apply_here(params, grads, state);
    }

    /// [`apply`](Self::apply) compiled for AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn apply_avx2(
        &self,
        params: &mut [f32],
        grads: &[f32],
        state: [&mut [f32]; MAX_STATE_PARTS],
    ) {
        self.apply_here(params, grads, state);
    }

    /// [`apply`](Self::apply)'s arithmetic, inlined into each instruction set's copy.
    #[inline(always)]
    fn apply_here(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; MAX_STATE_PARTS]) {
        let [first, second, third] = state;
        match *self {
            ElementwiseRule::Sgd {
                learning_rate: lr,
                momentum,
                nesterov,
                weight_decay,
            } => {
                apply_weight_decay(params, weight_decay, lr);
                // Keras keeps no velocity at all when momentum is 0.
                if momentum == 0.0 {
                    for (w, &g) in params.iter_mut().zip(grads) {
                        *w -= g * lr;
                    }
                    return;
                }
                for ((w, &g), m) in params.iter_mut().zip(grads).zip(first) {
                    *m = *m * momentum - g * lr;
                    if nesterov {
                        *w += *m * momentum - g * lr;
                    } else {
                        *w += *m;
                    }
                }
            }
            ElementwiseRule::Adam {
                learning_rate,
                alpha,
                beta_1,
                beta_2,
                epsilon,
                amsgrad,
                weight_decay,
            } => {
                apply_weight_decay(params, weight_decay, learning_rate);
                let (one_minus_b1, one_minus_b2) = (1.0 - beta_1, 1.0 - beta_2);
                let (m, v) = (first, second);
                if !amsgrad {
                    // The common case gets its own branch-free loop: with `amsgrad` tested
                    // inside the loop and `v_hat` indexed, LLVM kept this scalar, and it was
                    // 64% of a digits `fit` epoch (BENCHMARKS.md, "Training").
                    let adam = AdamStep {
                        alpha,
                        one_minus_b1,
                        one_minus_b2,
                        epsilon,
                    };
                    adam.run(params, grads, m, v);
                    return;
                }
                let v_hat = third;
                for i in 0..params.len() {
                    let g = grads[i];
                    m[i] += (g - m[i]) * one_minus_b1;
                    v[i] += (g * g - v[i]) * one_minus_b2;
                    if v[i] > v_hat[i] {
                        v_hat[i] = v[i];
                    }
                    params[i] -= m[i] * alpha / (math::sqrt(v_hat[i]) + epsilon);
                }
            }
            ElementwiseRule::RmsProp {
                learning_rate: lr,
                rho,
                momentum,
                epsilon,
                centered,
                weight_decay,
            } => {
                apply_weight_decay(params, weight_decay, lr);
                let one_minus_rho = 1.0 - rho;
                let use_momentum = momentum > 0.0;
                // Buffers: velocity, then the momentum and the mean gradient when enabled.
                let velocity = first;
                if !centered && !use_momentum {
                    // Keras's default RMSprop on zipped slices, branch-free: indexed, with
                    // `centered` and the momentum tested per value, the loop stayed scalar
                    // (a digits epoch took 3.28 ms instead of Adam's 1.77 ms).
                    for ((w, &g), v) in params.iter_mut().zip(grads).zip(velocity.iter_mut()) {
                        *v = rho * *v + one_minus_rho * (g * g);
                        *w -= lr * g / math::sqrt(*v + epsilon);
                    }
                    return;
                }
                let (mom, avg) = if use_momentum {
                    (second, third)
                } else {
                    (third, second)
                };
                for i in 0..params.len() {
                    let g = grads[i];
                    velocity[i] = rho * velocity[i] + one_minus_rho * (g * g);
                    let denominator = if centered {
                        avg[i] = rho * avg[i] + one_minus_rho * g;
                        velocity[i] - avg[i] * avg[i] + epsilon
                    } else {
                        velocity[i] + epsilon
                    };
                    let increment = lr * g / math::sqrt(denominator);
                    if use_momentum {
                        mom[i] = momentum * mom[i] + increment;
                        params[i] -= mom[i];
                    } else {
                        params[i] -= increment;
                    }
                }
            }
            ElementwiseRule::Adagrad {
                learning_rate: lr,
                epsilon,
                weight_decay,
                ..
            } => {
                apply_weight_decay(params, weight_decay, lr);
                for ((w, &g), s) in params.iter_mut().zip(grads).zip(first) {
                    *s += g * g;
                    *w -= lr * g / math::sqrt(*s + epsilon);
                }
            }
            ElementwiseRule::Nadam {
                learning_rate: lr,
                beta_1,
                beta_2,
                epsilon,
                u_t,
                u_t_1,
                u_product_t,
                u_product_t_1,
                beta_2_power,
                weight_decay,
            } => {
                apply_weight_decay(params, weight_decay, lr);
                let (one_minus_b1, one_minus_b2) = (1.0 - beta_1, 1.0 - beta_2);
                let (one_minus_u_t, one_minus_up_t) = (1.0 - u_t, 1.0 - u_product_t);
                let (one_minus_up_t_1, one_minus_b2p) = (1.0 - u_product_t_1, 1.0 - beta_2_power);
                for ((w, &g), (m, v)) in params
                    .iter_mut()
                    .zip(grads)
                    .zip(first.iter_mut().zip(second))
                {
                    *m += (g - *m) * one_minus_b1;
                    *v += (g * g - *v) * one_minus_b2;
                    let m_hat = u_t_1 * *m / one_minus_up_t_1 + one_minus_u_t * g / one_minus_up_t;
                    let v_hat = *v / one_minus_b2p;
                    *w -= m_hat * lr / (math::sqrt(v_hat) + epsilon);
                }
            }
            ElementwiseRule::Adamax {
                learning_rate: lr,
                beta_1,
                beta_2,
                epsilon,
                beta_1_power,
                weight_decay,
            } => {
                apply_weight_decay(params, weight_decay, lr);
                let (one_minus_b1, one_minus_b1p) = (1.0 - beta_1, 1.0 - beta_1_power);
                for ((w, &g), (m, u)) in params
                    .iter_mut()
                    .zip(grads)
                    .zip(first.iter_mut().zip(second))
                {
                    *m += (g - *m) * one_minus_b1;
                    let decayed = beta_2 * *u;
                    let magnitude = if g < 0.0 { -g } else { g };
                    *u = if decayed > magnitude {
                        decayed
                    } else {
                        magnitude
                    };
                    *w -= lr * *m / (one_minus_b1p * (*u + epsilon));
                }
            }
            ElementwiseRule::Adadelta {
                learning_rate: lr,
                rho,
                epsilon,
                weight_decay,
            } => {
                apply_weight_decay(params, weight_decay, lr);
                let one_minus_rho = 1.0 - rho;
                let (grad_acc, delta_acc) = (first, second);
                for ((w, &g), (ag, ad)) in params
                    .iter_mut()
                    .zip(grads)
                    .zip(grad_acc.iter_mut().zip(delta_acc))
                {
                    *ag = rho * *ag + one_minus_rho * (g * g);
                    let delta = -(math::sqrt(*ad + epsilon) * g / math::sqrt(*ag + epsilon));
                    *ad = rho * *ad + one_minus_rho * (delta * delta);
                    *w += lr * delta;
                }
            }
            ElementwiseRule::Ftrl {
                learning_rate: lr,
                learning_rate_power,
                l1_regularization_strength: l1,
                l2_reg,
                l2_shrinkage_regularization_strength: shrinkage,
                weight_decay,
                ..
            } => {
                apply_weight_decay(params, weight_decay, lr);
                let power = -learning_rate_power;
                let (two_shrinkage, two_l2) = (2.0 * shrinkage, 2.0 * l2_reg);
                let (accum, linear) = (first, second);
                for ((w, &g), (acc, lin)) in params
                    .iter_mut()
                    .zip(grads)
                    .zip(accum.iter_mut().zip(linear))
                {
                    let grad_to_use = g + two_shrinkage * *w;
                    let new_accum = *acc + g * g;
                    let new_power = math::powf(new_accum, power);
                    *lin += grad_to_use - (new_power - math::powf(*acc, power)) / lr * *w;
                    let quadratic = new_power / lr + two_l2;
                    let clipped = if *lin < -l1 {
                        -l1
                    } else if *lin > l1 {
                        l1
                    } else {
                        *lin
                    };
                    *w = (clipped - *lin) / quadratic;
                    *acc = new_accum;
                }
            }
            ElementwiseRule::Lion {
                learning_rate: lr,
                beta_1,
                beta_2,
                weight_decay,
            } => {
                apply_weight_decay(params, weight_decay, lr);
                let (one_minus_b1, one_minus_b2) = (1.0 - beta_1, 1.0 - beta_2);
                for ((w, &g), m) in params.iter_mut().zip(grads).zip(first) {
                    *w -= lr * sign(*m * beta_1 + g * one_minus_b1);
                    *m = *m * beta_2 + g * one_minus_b2;
                }
            }
        }
    }

    /// [`apply`](Self::apply) on a whole weight whose state is `state_parts().0` buffers of
    /// `params.len()` values back to back (the layout of [`super::Slots`]).
    pub fn apply_whole(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) {
        let n = params.len();
        let (first, rest) = state.split_at_mut(n.min(state.len()));
        let (second, third) = rest.split_at_mut(n.min(rest.len()));
        self.apply(params, grads, [first, second, third]);
    }

    /// State part `part`'s magnitude over `values`, as bits (see [`magnitude`]); for
    /// Adam's `v` and `v_hat`, which must stay non-negative, the raw bits, so that a
    /// negative value (even `-0.0`) reads as above infinity.
    pub(crate) fn part_magnitude(&self, part: usize, values: &[f32]) -> u32 {
        let non_negative = match self {
            ElementwiseRule::Adam { .. }
            | ElementwiseRule::Adamax { .. }
            | ElementwiseRule::Nadam { .. } => part > 0,
            ElementwiseRule::RmsProp { .. } | ElementwiseRule::Adagrad { .. } => part == 0,
            ElementwiseRule::Adadelta { .. } => true,
            _ => false,
        };
        if non_negative {
            values.iter().fold(0, |top, &x| top.max(x.to_bits()))
        } else {
            magnitude(values)
        }
    }

    /// Bounds on the magnitudes after this step, when they prove every weight and state
    /// value finite (and the parts that must stay non-negative, non-negative: Adam's and
    /// Nadam's `v`, the accumulators of RMSprop, Adagrad and Adadelta, Adamax's `u`);
    /// `before` bounds them before the step and `grad` the gradients (after regularization
    /// and clipping). Every intermediate value of the rule gets a bound, computed in `f64`,
    /// and each must stay below [`LIMIT`]: then nothing overflows; and these rules divide
    /// only by divisors bounded away from 0 (`sqrt(v) + epsilon`, `sqrt(v + epsilon)` of a
    /// `v >= 0`, `(1 - beta_1^t) * (u + epsilon)`, Nadam's bias corrections, each checked)
    /// and take roots of non-negative values only, so nothing is NaN either. The unit test
    /// `the_overflow_bound_holds_at_its_extremes` runs every bounded rule on values at the
    /// bounds it is given and checks its outputs against the bounds after. The bounds after
    /// the step widen by [`ROUNDING`], so they can bound the next step in turn without a
    /// look at the values. `None` when nothing is proven: Ftrl and centered RMSprop (not
    /// bounded here), a non-positive `epsilon`, a decay outside `[0, 1]`, a non-finite
    /// hyperparameter, or bounds too large.
    pub(crate) fn keeps_finite(&self, before: &Magnitudes, grad: f64) -> Option<Magnitudes> {
        let w = before.weights;
        let abs = |x: f32| f64::from(x).abs();
        // `w -= w * wd * lr`: its two products, then the decayed weight. (NaN fails `<`.)
        let decay = |wd: Option<f32>, lr: f32| match wd {
            Some(wd) => [
                w * abs(wd),
                w * abs(wd) * abs(lr),
                w * (1.0 + abs(wd) * abs(lr)),
            ],
            None => [w; 3],
        };
        let below = |bounds: &[f64]| bounds.iter().all(|&b| b < LIMIT);
        let after = match *self {
            ElementwiseRule::Sgd {
                learning_rate: lr,
                momentum,
                nesterov,
                weight_decay,
            } => {
                let decayed = decay(weight_decay, lr);
                let step = grad * abs(lr);
                // `m = m * momentum - g * lr`, then `w += m` or `w += m * momentum - g * lr`.
                let velocity = before.parts[0] * abs(momentum) + step;
                let new_w = if momentum == 0.0 {
                    decayed[2] + step
                } else if nesterov {
                    decayed[2] + velocity * abs(momentum) + step
                } else {
                    decayed[2] + velocity
                };
                if !(below(&decayed) && below(&[grad, step, velocity, new_w])) {
                    return None;
                }
                Magnitudes {
                    weights: new_w,
                    parts: [if momentum == 0.0 { 0.0 } else { velocity }, 0.0, 0.0],
                }
            }
            ElementwiseRule::Adam {
                learning_rate,
                alpha,
                beta_1,
                beta_2,
                epsilon,
                amsgrad,
                weight_decay,
            } => {
                let decayed = decay(weight_decay, learning_rate);
                let (c1, c2) = (f64::from(1.0 - beta_1), f64::from(1.0 - beta_2));
                // `v + (g * g - v) * c2` stays >= 0 from `v >= 0` only for `c2` in [0, 1].
                if !(epsilon > 0.0 && (0.0..=1.0).contains(&c2)) {
                    return None;
                }
                let [m, v, v_hat] = before.parts;
                // `m + (g - m) * c1` is `(1 - c1) * m + c1 * g` up to rounding: within
                // `max(|m|, |g|)` for `c1` in [0, 1]; otherwise `|m| + (|g| + |m|) * |c1|`.
                let new_m = if (0.0..=1.0).contains(&c1) {
                    m.max(grad)
                } else {
                    m + (grad + m) * c1.abs()
                };
                let square = grad * grad;
                let new_v = v.max(square);
                let new_v_hat = if amsgrad { v_hat.max(new_v) } else { 0.0 };
                let root = libm::sqrt(new_v.max(new_v_hat)) + f64::from(epsilon);
                // `w -= m * alpha / (sqrt(v) + epsilon)`, the divisor at least `epsilon`.
                let step = new_m * abs(alpha);
                let new_w = decayed[2] + step / f64::from(epsilon);
                if !(below(&decayed)
                    && below(&[grad, grad + m, new_m, square, new_v, root, step, new_w]))
                {
                    return None;
                }
                Magnitudes {
                    weights: new_w,
                    parts: [new_m, new_v, new_v_hat],
                }
            }
            ElementwiseRule::RmsProp {
                learning_rate: lr,
                rho,
                momentum,
                epsilon,
                centered,
                weight_decay,
            } => {
                // Centered, `v - avg²` may round below 0: not bounded (checked path).
                let one_minus_rho = f64::from(1.0 - rho);
                if centered || !(epsilon > 0.0 && rho >= 0.0 && one_minus_rho >= 0.0) {
                    return None;
                }
                let decayed = decay(weight_decay, lr);
                let [v, mom, _] = before.parts;
                // `v = rho * v + (1 - rho) * g²` (>= 0), `lr * g / sqrt(v + epsilon)`.
                let square = grad * grad;
                let new_v = abs(rho) * v + one_minus_rho * square;
                let increment = abs(lr) * grad / libm::sqrt(f64::from(epsilon));
                let new_mom = abs(momentum) * mom + increment;
                let new_w = decayed[2] + if momentum > 0.0 { new_mom } else { increment };
                let bounds = [
                    grad,
                    square,
                    new_v,
                    new_v + f64::from(epsilon),
                    abs(lr) * grad,
                ];
                if !(below(&decayed) && below(&bounds) && below(&[increment, new_mom, new_w])) {
                    return None;
                }
                Magnitudes {
                    weights: new_w,
                    parts: [new_v, if momentum > 0.0 { new_mom } else { 0.0 }, 0.0],
                }
            }
            ElementwiseRule::Adagrad {
                learning_rate: lr,
                epsilon,
                weight_decay,
                ..
            } => {
                if epsilon.is_nan() || epsilon <= 0.0 {
                    return None;
                }
                let decayed = decay(weight_decay, lr);
                // `s += g²` (>= 0), `w -= lr * g / sqrt(s + epsilon)`.
                let square = grad * grad;
                let new_s = before.parts[0] + square;
                let step = abs(lr) * grad / libm::sqrt(f64::from(epsilon));
                let new_w = decayed[2] + step;
                let bounds = [
                    grad,
                    square,
                    new_s,
                    new_s + f64::from(epsilon),
                    abs(lr) * grad,
                ];
                if !(below(&decayed) && below(&bounds) && below(&[step, new_w])) {
                    return None;
                }
                Magnitudes {
                    weights: new_w,
                    parts: [new_s, 0.0, 0.0],
                }
            }
            ElementwiseRule::Adamax {
                learning_rate: lr,
                beta_1,
                beta_2,
                epsilon,
                beta_1_power,
                weight_decay,
            } => {
                // `w -= lr * m / ((1 - beta_1^t) * (u + epsilon))`, `u >= 0`: the divisor is
                // at least `|1 - beta_1^t| * epsilon`, kept well above the subnormals.
                let divisor = f64::from(1.0 - beta_1_power).abs() * f64::from(epsilon);
                if !(epsilon > 0.0 && beta_2 >= 0.0 && divisor >= 1e-30) {
                    return None;
                }
                let decayed = decay(weight_decay, lr);
                let c1 = f64::from(1.0 - beta_1);
                let [m, u, _] = before.parts;
                let new_m = if (0.0..=1.0).contains(&c1) {
                    m.max(grad)
                } else {
                    m + (grad + m) * c1.abs()
                };
                // `u = max(beta_2 * u, |g|)`.
                let new_u = (abs(beta_2) * u).max(grad);
                let step = abs(lr) * new_m;
                let new_w = decayed[2] + step / divisor;
                let sum = new_u + f64::from(epsilon);
                let product = f64::from(1.0 - beta_1_power).abs() * sum;
                if !(below(&decayed)
                    && below(&[grad, grad + m, new_m, new_u, sum, product, step, new_w]))
                {
                    return None;
                }
                Magnitudes {
                    weights: new_w,
                    parts: [new_m, new_u, 0.0],
                }
            }
            ElementwiseRule::Nadam {
                learning_rate: lr,
                beta_1,
                beta_2,
                epsilon,
                u_t,
                u_t_1,
                u_product_t,
                u_product_t_1,
                beta_2_power,
                weight_decay,
            } => {
                // Adam's moments; then `m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t)
                // * g / (1 - u_product_t)`, `v_hat = v / (1 - beta_2^t)` (>= 0 for a positive
                // divisor) and `w -= m_hat * lr / (sqrt(v_hat) + epsilon)`.
                let (c1, c2) = (f64::from(1.0 - beta_1), f64::from(1.0 - beta_2));
                let (d1, d2) = (f64::from(1.0 - u_product_t_1), f64::from(1.0 - u_product_t));
                let d3 = f64::from(1.0 - beta_2_power);
                let divisors = d1.abs() >= 1e-30 && d2.abs() >= 1e-30 && d3 >= 1e-30;
                if !(epsilon > 0.0 && (0.0..=1.0).contains(&c2) && divisors) {
                    return None;
                }
                let decayed = decay(weight_decay, lr);
                let [m, v, _] = before.parts;
                let new_m = if (0.0..=1.0).contains(&c1) {
                    m.max(grad)
                } else {
                    m + (grad + m) * c1.abs()
                };
                let square = grad * grad;
                let new_v = v.max(square);
                let first = abs(u_t_1) * new_m;
                let second = f64::from(1.0 - u_t).abs() * grad;
                let m_hat = first / d1.abs() + second / d2.abs();
                let v_hat = new_v / d3;
                let root = libm::sqrt(v_hat) + f64::from(epsilon);
                let step = m_hat * abs(lr);
                let new_w = decayed[2] + step / f64::from(epsilon);
                let bounds = [grad, grad + m, new_m, square, new_v, first, second, m_hat];
                if !(below(&decayed) && below(&bounds) && below(&[v_hat, root, step, new_w])) {
                    return None;
                }
                Magnitudes {
                    weights: new_w,
                    parts: [new_m, new_v, 0.0],
                }
            }
            ElementwiseRule::Adadelta {
                learning_rate: lr,
                rho,
                epsilon,
                weight_decay,
            } => {
                let c = f64::from(1.0 - rho);
                if epsilon.is_nan() || epsilon <= 0.0 || rho.is_nan() || rho < 0.0 || c < 0.0 {
                    return None;
                }
                let decayed = decay(weight_decay, lr);
                let eps = f64::from(epsilon);
                let [ag, ad, _] = before.parts;
                // `ag = rho * ag + (1 - rho) * g²` (>= 0), then
                // `delta = -(sqrt(ad + eps) * g / sqrt(ag + eps))`: `|g| / sqrt(ag + eps)` is
                // at most `|g| / sqrt(eps)`, and at most `1 / sqrt(1 - rho)` since the new
                // `ag >= (1 - rho) * g²`; then `ad = rho * ad + (1 - rho) * delta²` (>= 0)
                // and `w += lr * delta`.
                let square = grad * grad;
                let new_ag = abs(rho) * ag + c * square;
                let root = libm::sqrt(ad + eps);
                let mut ratio = grad / libm::sqrt(eps);
                if c > 0.0 {
                    ratio = ratio.min(1.0 / libm::sqrt(c));
                }
                let delta = root * ratio;
                let new_ad = abs(rho) * ad + c * delta * delta;
                let step = abs(lr) * delta;
                let new_w = decayed[2] + step;
                let bounds = [grad, square, new_ag, new_ag + eps, ad + eps, root * grad];
                if !(below(&decayed) && below(&bounds) && below(&[delta, new_ad, step, new_w])) {
                    return None;
                }
                Magnitudes {
                    weights: new_w,
                    parts: [new_ag, new_ad, 0.0],
                }
            }
            ElementwiseRule::Lion {
                learning_rate: lr,
                beta_1,
                beta_2,
                weight_decay,
            } => {
                let decayed = decay(weight_decay, lr);
                let m = before.parts[0];
                // `w -= lr * sign(m * beta_1 + g * (1 - beta_1))`, then
                // `m = m * beta_2 + g * (1 - beta_2)`.
                let direction = m * abs(beta_1) + grad * f64::from(1.0 - beta_1).abs();
                let new_m = m * abs(beta_2) + grad * f64::from(1.0 - beta_2).abs();
                let new_w = decayed[2] + abs(lr);
                if !(below(&decayed) && below(&[grad, direction, new_m, new_w])) {
                    return None;
                }
                Magnitudes {
                    weights: new_w,
                    parts: [new_m, 0.0, 0.0],
                }
            }
            _ => return None,
        };
        Some(Magnitudes {
            weights: after.weights * ROUNDING,
            parts: after.parts.map(|p| p * ROUNDING),
        })
    }
}

/// Adam's update without AMSGrad, the rule of most `fit` runs: `m += (g - m) · (1 - beta_1)`,
/// `v += (g² - v) · (1 - beta_2)`, `w -= m · alpha / (sqrt(v) + epsilon)`.
#[derive(Clone, Copy)]
struct AdamStep {
    alpha: f32,
    one_minus_b1: f32,
    one_minus_b2: f32,
    epsilon: f32,
}

impl AdamStep {
    /// Every value of `params` (`grads`, `m` and `v` as long). Where the CPU has AVX2, eight
    /// lanes at a time with explicit 256-bit instructions, in every build: 16-lane square
    /// roots and divisions (what the compiler emits for `-C target-cpu=native` on the Zen 4
    /// of BENCHMARKS.md) made a digits epoch 2.14 ms against 1.79 ms with 8 lanes
    /// ("Training: one epoch against the peak"). The same operations in the same order as
    /// the scalar loop, each correctly rounded: the same bits.
    #[inline(always)]
    fn run(self, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        let n = params.len().min(grads.len()).min(m.len()).min(v.len());
        let (params, grads, m, v) = (&mut params[..n], &grads[..n], &mut m[..n], &mut v[..n]);
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if crate::isa::isa() >= crate::isa::Isa::Avx2Fma
            && crate::isa::available().contains(&crate::isa::Isa::Avx2Fma)
        {
            // SAFETY: `available` lists `Avx2Fma` only when the CPU has AVX2 and FMA; the
            // four slices hold `n` values each.
            done = unsafe { self.run_avx2(params, grads, m, v) };
        }
        let (params, grads) = (&mut params[done..], &grads[done..]);
        let (m, v) = (&mut m[done..], &mut v[done..]);
        for ((p, g), (m, v)) in params.iter_mut().zip(grads).zip(m.iter_mut().zip(v)) {
            *m += (g - *m) * self.one_minus_b1;
            *v += (g * g - *v) * self.one_minus_b2;
            *p -= *m * self.alpha / (math::sqrt(*v) + self.epsilon);
        }
    }

    /// The whole groups of eight values; returns how many values it updated.
    ///
    /// # Safety
    /// The CPU supports AVX2; the four slices have the same length.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(
        self,
        params: &mut [f32],
        grads: &[f32],
        m: &mut [f32],
        v: &mut [f32],
    ) -> usize {
        use core::arch::x86_64::*;
        let whole = params.len() - params.len() % 8;
        let b1 = _mm256_set1_ps(self.one_minus_b1);
        let b2 = _mm256_set1_ps(self.one_minus_b2);
        let alpha = _mm256_set1_ps(self.alpha);
        let epsilon = _mm256_set1_ps(self.epsilon);
        let (pp, gp, mp, vp) = (
            params.as_mut_ptr(),
            grads.as_ptr(),
            m.as_mut_ptr(),
            v.as_mut_ptr(),
        );
        let mut i = 0;
        while i < whole {
            // SAFETY: `i + 8 <= whole <= len` for each of the four slices.
            unsafe {
                let g = _mm256_loadu_ps(gp.add(i));
                let mut mi = _mm256_loadu_ps(mp.add(i));
                let mut vi = _mm256_loadu_ps(vp.add(i));
                mi = _mm256_add_ps(mi, _mm256_mul_ps(_mm256_sub_ps(g, mi), b1));
                vi = _mm256_add_ps(
                    vi,
                    _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(g, g), vi), b2),
                );
                let step = _mm256_div_ps(
                    _mm256_mul_ps(mi, alpha),
                    _mm256_add_ps(_mm256_sqrt_ps(vi), epsilon),
                );
                _mm256_storeu_ps(mp.add(i), mi);
                _mm256_storeu_ps(vp.add(i), vi);
                _mm256_storeu_ps(pp.add(i), _mm256_sub_ps(_mm256_loadu_ps(pp.add(i)), step));
            }
            i += 8;
        }
        whole
    }
}

/// `jnp.sign`: -1, 0 or 1 (NaN stays NaN).
#[inline(always)]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// Keras's decoupled weight decay, `w = w - w * wd * lr`, run before each update step.
#[inline(always)]
fn apply_weight_decay(params: &mut [f32], weight_decay: Option<f32>, learning_rate: f32) {
    if let Some(wd) = weight_decay {
        params
            .iter_mut()
            .for_each(|w| *w -= *w * wd * learning_rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizers::{
        Adadelta, Adagrad, Adam, AdamW, Adamax, Ftrl, Lion, Nadam, Optimizer, RmsProp, Sgd,
    };
    use alloc::boxed::Box;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Adam's 8-lane loop (where the CPU has AVX2) gives the scalar loop's bits, over
    /// lengths around its groups of eight and values that reach Adam's edge cases (zero and
    /// subnormal gradients, `v` at 0, large steps).
    #[test]
    fn adams_vector_loop_gives_the_scalar_bits() {
        let step = AdamStep {
            alpha: 0.001 * 0.3,
            one_minus_b1: 1.0 - 0.9,
            one_minus_b2: 1.0 - 0.999,
            epsilon: 1e-7,
        };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let unit = (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            match seed % 7 {
                0 => 0.0,
                1 => unit * 1e-40,
                2 => unit * 1e3,
                _ => unit,
            }
        };
        for len in (0..40).chain([1000, 8195]) {
            let grads: Vec<f32> = (0..len).map(|_| next()).collect();
            let params: Vec<f32> = (0..len).map(|_| next()).collect();
            let m0: Vec<f32> = (0..len).map(|_| next()).collect();
            let v0: Vec<f32> = (0..len).map(|_| next().abs()).collect();
            let (mut p, mut m, mut v) = (params.clone(), m0.clone(), v0.clone());
            step.run(&mut p, &grads, &mut m, &mut v);
            let (mut p2, mut m2, mut v2) = (params, m0, v0);
            for i in 0..len {
                let g = grads[i];
                m2[i] += (g - m2[i]) * step.one_minus_b1;
                v2[i] += (g * g - v2[i]) * step.one_minus_b2;
                p2[i] -= m2[i] * step.alpha / (math::sqrt(v2[i]) + step.epsilon);
            }
            let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&p), bits(&p2), "weights, length {len}");
            assert_eq!(bits(&m), bits(&m2), "m, length {len}");
            assert_eq!(bits(&v), bits(&v2), "v, length {len}");
        }
    }

    /// Three steps of `optimizer` on one weight, whole (through `update`) and in three
    /// uneven pieces through the rule and the state buffer: the same values, bit for bit —
    /// what lets `fit` update pieces of a weight on different threads.
    fn pieces_match_whole(mut whole: Box<dyn Optimizer>, mut pieces: Box<dyn Optimizer>) {
        let n = 37;
        let mut w_whole: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut w_pieces = w_whole.clone();
        for step in 0..3 {
            let grads: Vec<f32> = (0..n).map(|i| ((i + step) as f32 * 0.71).cos()).collect();
            whole.step_begin();
            whole.update(0, &mut w_whole, &grads);
            pieces.step_begin();
            let (rule, slots) = pieces
                .elementwise()
                .expect("kiln optimizers are element-wise");
            let (parts, init) = rule.state_parts();
            let mut start = [core::ptr::null_mut()];
            slots.piece_starts(&[n], parts, init, &mut start);
            // SAFETY: `piece_starts` sized the slot to `parts · n` values; nothing else
            // borrows it until the next step.
            let state = unsafe { core::slice::from_raw_parts_mut(start[0], parts * n) };
            for (lo, hi) in [(0, 5), (5, 21), (21, n)] {
                let mut views: Vec<&mut [f32]> =
                    state.chunks_mut(n).map(|part| &mut part[lo..hi]).collect();
                views.resize_with(MAX_STATE_PARTS, || &mut []);
                let [a, b, c]: [&mut [f32]; MAX_STATE_PARTS] =
                    views.try_into().expect("three parts");
                assert!(parts <= MAX_STATE_PARTS);
                rule.apply(&mut w_pieces[lo..hi], &grads[lo..hi], [a, b, c]);
            }
        }
        assert_eq!(w_whole, w_pieces, "{}", whole.name());
    }

    /// `keeps_finite` is sound: from values at the magnitudes it is given (every sign),
    /// each rule it proves writes finite values within the bounds it returns; and it proves
    /// ordinary steps, not overflowing ones.
    #[test]
    fn the_overflow_bound_holds_at_its_extremes() {
        let sgd = |momentum, nesterov, weight_decay| ElementwiseRule::Sgd {
            learning_rate: 0.5,
            momentum,
            nesterov,
            weight_decay,
        };
        let adam = |amsgrad, weight_decay| ElementwiseRule::Adam {
            learning_rate: 0.001,
            alpha: 0.003,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad,
            weight_decay,
        };
        let rms = |momentum| ElementwiseRule::RmsProp {
            learning_rate: 0.001,
            rho: 0.9,
            momentum,
            epsilon: 1e-7,
            centered: false,
            weight_decay: Some(0.01),
        };
        let rules = [
            sgd(0.0, false, None),
            sgd(0.9, false, None),
            sgd(0.9, true, Some(0.01)),
            adam(false, None),
            adam(true, Some(0.004)),
            rms(0.0),
            rms(0.5),
            ElementwiseRule::Adagrad {
                learning_rate: 0.001,
                epsilon: 1e-7,
                initial_accumulator_value: 0.1,
                weight_decay: None,
            },
            ElementwiseRule::Adamax {
                learning_rate: 0.001,
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-7,
                beta_1_power: 0.9,
                weight_decay: None,
            },
            ElementwiseRule::Lion {
                learning_rate: 0.001,
                beta_1: 0.9,
                beta_2: 0.99,
                weight_decay: Some(0.1),
            },
            ElementwiseRule::Adadelta {
                learning_rate: 0.5,
                rho: 0.95,
                epsilon: 1e-7,
                weight_decay: Some(0.01),
            },
            ElementwiseRule::Nadam {
                learning_rate: 0.001,
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-7,
                u_t: 0.46,
                u_t_1: 0.47,
                u_product_t: 0.46,
                u_product_t_1: 0.2162,
                beta_2_power: 0.999,
                weight_decay: None,
            },
        ];
        let sizes = [
            0.0f32, 1e-30, 1e-3, 1.0, 1e6, 1e15, 1e18, 1e19, 1e30, 1e33, 3e38,
        ];
        let mut proven = 0;
        for rule in rules {
            for &w in &sizes {
                for &m in &sizes {
                    for &g in &sizes {
                        let v = m;
                        let before = Magnitudes {
                            weights: f64::from(w),
                            parts: [f64::from(m), f64::from(v), f64::from(v)],
                        };
                        let Some(after) = rule.keeps_finite(&before, f64::from(g)) else {
                            continue;
                        };
                        proven += 1;
                        // Every sign of w, g and the signed state; the parts that must stay
                        // non-negative (Adam's `v`, RMSprop's, Adagrad's accumulator) at +m.
                        let mut params = [w, w, -w, -w, w, -w, w, -w];
                        let grads = [g, -g, g, -g, g, g, -g, -g];
                        let part = |i: usize| {
                            if rule.part_magnitude(i, &[-1.0]) >= NON_FINITE {
                                [m; 8]
                            } else {
                                [m, -m, m, -m, -m, m, -m, m]
                            }
                        };
                        let (mut first, mut second, mut third) = (part(0), part(1), part(2));
                        rule.apply(&mut params, &grads, [&mut first, &mut second, &mut third]);
                        let within = |values: &[f32], bound: f64| {
                            values
                                .iter()
                                .all(|x| x.is_finite() && f64::from(*x).abs() <= bound)
                        };
                        let parts = rule.state_parts().0;
                        assert!(
                            within(&params, after.weights),
                            "{rule:?} w {w} m {m} g {g}: {params:?}"
                        );
                        for (part, values) in [&first, &second, &third]
                            .into_iter()
                            .enumerate()
                            .take(parts)
                        {
                            assert!(
                                within(values, after.parts[part]),
                                "{rule:?} part {part}: {values:?}"
                            );
                        }
                    }
                }
            }
        }
        assert!(proven > 1000, "{proven}");
        let typical = Magnitudes {
            weights: 2.0,
            parts: [0.1, 0.01, 0.0],
        };
        assert!(adam(false, None).keeps_finite(&typical, 1.0).is_some());
        assert!(
            adam(false, None).keeps_finite(&typical, 1e20).is_none(),
            "g² overflows v"
        );
        assert!(sgd(0.0, false, None).keeps_finite(&typical, 1e38).is_none());
        let no_epsilon = ElementwiseRule::Adam {
            learning_rate: 0.001,
            alpha: 0.003,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 0.0,
            amsgrad: false,
            weight_decay: None,
        };
        assert!(
            no_epsilon.keeps_finite(&typical, 1.0).is_none(),
            "0 / 0 is possible"
        );
        let negative_v = Magnitudes {
            parts: [0.1, f64::INFINITY, 0.0],
            ..typical
        };
        assert!(adam(false, None).keeps_finite(&negative_v, 1.0).is_none());
        let lion = ElementwiseRule::Lion {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.99,
            weight_decay: None,
        };
        assert!(lion.keeps_finite(&typical, 1.0).is_some());
        let centered = ElementwiseRule::RmsProp {
            learning_rate: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: true,
            weight_decay: None,
        };
        assert!(
            centered.keeps_finite(&typical, 1.0).is_none(),
            "not bounded: checked path"
        );
    }

    #[test]
    fn every_optimizer_updates_pieces_exactly_like_the_whole() {
        let cases: Vec<(Box<dyn Optimizer>, Box<dyn Optimizer>)> = vec![
            (Box::new(Sgd::default()), Box::new(Sgd::default())),
            {
                let sgd = Sgd {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: Some(0.01),
                    ..Sgd::default()
                };
                (Box::new(sgd.clone()), Box::new(sgd))
            },
            (Box::new(Adam::default()), Box::new(Adam::default())),
            {
                let adam = Adam {
                    amsgrad: true,
                    ..Adam::default()
                };
                (Box::new(adam.clone()), Box::new(adam))
            },
            (Box::new(AdamW::default()), Box::new(AdamW::default())),
            {
                let rms = RmsProp {
                    momentum: 0.5,
                    centered: true,
                    ..RmsProp::default()
                };
                (Box::new(rms.clone()), Box::new(rms))
            },
            {
                let rms = RmsProp {
                    centered: true,
                    ..RmsProp::default()
                };
                (Box::new(rms.clone()), Box::new(rms))
            },
            (Box::new(Adagrad::default()), Box::new(Adagrad::default())),
            (Box::new(Nadam::default()), Box::new(Nadam::default())),
            (Box::new(Adamax::default()), Box::new(Adamax::default())),
            (Box::new(Adadelta::default()), Box::new(Adadelta::default())),
            {
                let ftrl = Ftrl {
                    learning_rate: 0.1,
                    l1_regularization_strength: 0.01,
                    l2_regularization_strength: 0.02,
                    l2_shrinkage_regularization_strength: 0.03,
                    beta: 0.5,
                    weight_decay: Some(0.01),
                    ..Ftrl::default()
                };
                (Box::new(ftrl.clone()), Box::new(ftrl))
            },
            (Box::new(Lion::default()), Box::new(Lion::default())),
        ];
        for (whole, pieces) in cases {
            pieces_match_whole(whole, pieces);
        }
    }
}
