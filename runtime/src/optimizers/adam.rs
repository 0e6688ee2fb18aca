//! [`Adam`], as `keras.optimizers.Adam`; [`super::AdamW`] shares its step.

use super::{apply_weight_decay, check, GradientClip, Optimizer, Slots};
use crate::math;

/// Adam (Kingma & Ba 2014), Keras 3's form. With moments `m`, `v` (zero at first) and step
/// `t` from 1:
///
/// ```text
/// alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
/// m += (g - m) * (1 - beta_1)
/// v += (g^2 - v) * (1 - beta_2)
/// v_hat = max(v_hat, v)                    (amsgrad only; then used for v)
/// w -= m * alpha / (sqrt(v) + epsilon)
/// ```
///
/// `epsilon` is added after the bias correction folded into `alpha` (the paper's "epsilon
/// hat"), so it is not the `epsilon` of PyTorch's Adam.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// Decay of the first moment. Keras default 0.9.
    pub beta_1: f32,
    /// Decay of the second moment. Keras default 0.999.
    pub beta_2: f32,
    /// Added to `sqrt(v)`. Keras default 1e-7.
    pub epsilon: f32,
    /// Use the running maximum of `v` (AMSGrad). Keras default false.
    pub amsgrad: bool,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none;
    /// [`super::AdamW`] is Adam with this set.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// Moments per weight, and the step count.
    pub state: Slots,
}

impl Default for Adam {
    fn default() -> Adam {
        Adam {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            weight_decay: None,
            clip: GradientClip::None,
            state: Slots::new(),
        }
    }
}

impl Optimizer for Adam {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    fn update(&mut self, slot: usize, params: &mut [f32], grads: &[f32]) {
        check(params, grads);
        apply_weight_decay(params, self.weight_decay, self.learning_rate);
        // t = 0 would divide by 1 - beta_1^0 = 0: a missing step_begin counts as step 1.
        let t = self.state.iterations().max(1) as f32;
        let lr = self.learning_rate;
        let (beta_1, beta_2, epsilon) = (self.beta_1, self.beta_2, self.epsilon);
        let alpha = lr * math::sqrt(1.0 - math::powf(beta_2, t)) / (1.0 - math::powf(beta_1, t));
        let (one_minus_b1, one_minus_b2) = (1.0 - beta_1, 1.0 - beta_2);
        let n = params.len();
        let parts = if self.amsgrad { 3 } else { 2 };
        let state = self.state.get(slot, n, parts, 0.0);
        let (m, rest) = state.split_at_mut(n);
        let (v, v_hat) = rest.split_at_mut(n);
        if !self.amsgrad {
            // The common case gets its own branch-free loop: with `self.amsgrad` tested (and
            // reloaded) inside the loop and `v_hat` indexed, LLVM kept this scalar, and it
            // was 64% of a digits `fit` epoch (BENCHMARKS.md, "Training"). Same arithmetic
            // in the same order, so the results are bit-identical.
            for ((p, g), (m, v)) in params.iter_mut().zip(grads).zip(m.iter_mut().zip(v)) {
                *m += (g - *m) * one_minus_b1;
                *v += (g * g - *v) * one_minus_b2;
                *p -= *m * alpha / (math::sqrt(*v) + epsilon);
            }
            return;
        }
        for i in 0..n {
            let g = grads[i];
            m[i] += (g - m[i]) * one_minus_b1;
            v[i] += (g * g - v[i]) * one_minus_b2;
            let v_used = if self.amsgrad {
                if v[i] > v_hat[i] {
                    v_hat[i] = v[i];
                }
                v_hat[i]
            } else {
                v[i]
            };
            params[i] -= m[i] * alpha / (math::sqrt(v_used) + epsilon);
        }
    }

    super::bookkeeping!("adam");
}
