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
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; MAX_STATE_PARTS]) {
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
                    for ((p, g), (m, v)) in params.iter_mut().zip(grads).zip(m.iter_mut().zip(v)) {
                        *m += (g - *m) * one_minus_b1;
                        *v += (g * g - *v) * one_minus_b2;
                        *p -= *m * alpha / (math::sqrt(*v) + epsilon);
                    }
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
}

/// `jnp.sign`: -1, 0 or 1 (NaN stays NaN).
#[inline]
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
#[inline]
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
