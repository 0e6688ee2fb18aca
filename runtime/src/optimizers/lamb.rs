//! [`Lamb`], as `keras.optimizers.Lamb`: the one kiln optimizer that is not element-wise.

use super::{Ema, GradientClip, Optimizer, Schedule, Slots};
use crate::math;

/// LAMB, layer-wise adaptive moments (You et al. 2019), Keras 3's form: Adam's
/// bias-corrected step, rescaled per weight tensor by the trust ratio of the weight's norm
/// to the step's. With `m`, `v` (zero at first) and step `t` from 1:
///
/// ```text
/// m += (g - m) * (1 - beta_1)
/// v += (g^2 - v) * (1 - beta_2)
/// u = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)
/// ratio = |w| / |u| if both norms are > 0, else 1      (L2 norms of the whole tensor)
/// w -= ratio * lr * u
/// ```
///
/// The ratio needs the whole weight, so `Lamb` has no [`super::ElementwiseRule`]: `fit`
/// with several threads updates its weights whole, on one thread.
#[derive(Clone, Debug, PartialEq)]
pub struct Lamb {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
    /// Decay of the first moment. Keras default 0.9.
    pub beta_1: f32,
    /// Decay of the second moment. Keras default 0.999.
    pub beta_2: f32,
    /// Added to the corrected `sqrt(v)`. Keras default 1e-7.
    pub epsilon: f32,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step, so before the norm of
    /// `w` is taken). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// Moments per weight, and the step count.
    pub state: Slots,
}

impl Default for Lamb {
    fn default() -> Lamb {
        Lamb {
            learning_rate: 0.001,
            schedule: None,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
        }
    }
}

impl Optimizer for Lamb {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    fn update(&mut self, slot: usize, params: &mut [f32], grads: &[f32]) {
        super::check(params, grads);
        let lr = super::step_rate(self.learning_rate, &self.schedule, &self.state);
        let t = self.state.iterations().max(1) as f32;
        if let Some(wd) = self.weight_decay {
            params.iter_mut().for_each(|w| *w -= *w * wd * lr);
        }
        let (one_minus_b1, one_minus_b2) = (1.0 - self.beta_1, 1.0 - self.beta_2);
        let correction_1 = 1.0 - math::powf(self.beta_1, t);
        let correction_2 = 1.0 - math::powf(self.beta_2, t);
        let epsilon = self.epsilon;
        let step = |m: f32, v: f32| (m / correction_1) / (math::sqrt(v / correction_2) + epsilon);
        let n = params.len();
        let (m, v) = self.state.get(slot, n, 2, 0.0).split_at_mut(n);
        // Two passes instead of a buffer for the step: the first updates the moments and
        // sums the squares, the second recomputes the same step and applies it.
        let (mut w_squares, mut u_squares) = (0.0f32, 0.0f32);
        for ((&w, &g), (m, v)) in params.iter().zip(grads).zip(m.iter_mut().zip(v.iter_mut())) {
            *m += (g - *m) * one_minus_b1;
            *v += (g * g - *v) * one_minus_b2;
            let u = step(*m, *v);
            w_squares += w * w;
            u_squares += u * u;
        }
        let (w_norm, u_norm) = (math::sqrt(w_squares), math::sqrt(u_squares));
        let ratio = if w_norm > 0.0 && u_norm > 0.0 {
            w_norm / u_norm
        } else {
            1.0
        };
        let scale = ratio * lr;
        for ((w, &m), &v) in params.iter_mut().zip(m.iter()).zip(v.iter()) {
            *w -= scale * step(m, v);
        }
        if let Some(ema) = &mut self.ema {
            ema.update(slot, params, self.state.iterations().max(1));
        }
    }

    super::bookkeeping!("lamb");
}
