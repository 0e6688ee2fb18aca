//! [`RmsProp`], as `keras.optimizers.RMSprop`.

use super::{apply_weight_decay, check, GradientClip, Optimizer, Slots};
use crate::math;

/// RMSprop (Hinton), Keras 3's form. With a mean square `v`, a mean gradient `a`
/// (`centered` only) and a momentum buffer `m` (`momentum > 0` only), all zero at first:
///
/// ```text
/// v = rho * v + (1 - rho) * g^2
/// a = rho * a + (1 - rho) * g                 (centered)
/// step = lr * g / sqrt(v - a^2 + epsilon)     (centered; else sqrt(v + epsilon))
/// m = momentum * m + step; w -= m             (momentum > 0; else w -= step)
/// ```
///
/// Note that `epsilon` sits inside the square root, unlike [`super::Adam`].
#[derive(Clone, Debug, PartialEq)]
pub struct RmsProp {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// Decay of the moving averages. Keras default 0.9.
    pub rho: f32,
    /// Momentum of the step. Keras default 0.
    pub momentum: f32,
    /// Added under the square root. Keras default 1e-7.
    pub epsilon: f32,
    /// Normalise by the estimated variance instead of the raw second moment. Keras default
    /// false.
    pub centered: bool,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// Moving averages per weight, and the step count.
    pub state: Slots,
}

impl Default for RmsProp {
    fn default() -> RmsProp {
        RmsProp {
            learning_rate: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            weight_decay: None,
            clip: GradientClip::None,
            state: Slots::new(),
        }
    }
}

impl Optimizer for RmsProp {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    fn update(&mut self, slot: usize, params: &mut [f32], grads: &[f32]) {
        check(params, grads);
        let lr = self.learning_rate;
        apply_weight_decay(params, self.weight_decay, lr);
        let (rho, epsilon, momentum) = (self.rho, self.epsilon, self.momentum);
        let one_minus_rho = 1.0 - rho;
        let n = params.len();
        // Buffers: velocity, then the momentum and the mean gradient when enabled.
        let use_momentum = momentum > 0.0;
        let parts = 1 + usize::from(use_momentum) + usize::from(self.centered);
        let state = self.state.get(slot, n, parts, 0.0);
        let (velocity, rest) = state.split_at_mut(n);
        let (mom, avg) = rest.split_at_mut(if use_momentum { n } else { 0 });
        for i in 0..n {
            let g = grads[i];
            velocity[i] = rho * velocity[i] + one_minus_rho * (g * g);
            let denominator = if self.centered {
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

    super::bookkeeping!("rmsprop");
}
