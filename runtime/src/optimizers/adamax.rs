//! [`Adamax`], as `keras.optimizers.Adamax`.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};
use crate::math;

/// Adamax, Adam's infinity-norm variant (Kingma & Ba 2014, section 7), Keras 3's form. With
/// `m` and the norm `u` (zero at first) and step `t` from 1:
///
/// ```text
/// m += (g - m) * (1 - beta_1)
/// u = max(beta_2 * u, |g|)
/// w -= lr * m / ((1 - beta_1^t) * (u + epsilon))
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Adamax {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
    /// Decay of the first moment. Keras default 0.9.
    pub beta_1: f32,
    /// Decay of the infinity norm. Keras default 0.999.
    pub beta_2: f32,
    /// Added to `u`. Keras default 1e-7.
    pub epsilon: f32,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// `m` and `u` per weight, and the step count.
    pub state: Slots,
}

impl Default for Adamax {
    fn default() -> Adamax {
        Adamax {
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

impl Adamax {
    /// This step's rule (after `step_begin`; a missing one counts as step 1).
    pub fn rule(&self) -> ElementwiseRule {
        self.rule_at(self.state.iterations().max(1))
    }

    /// Step `t`'s rule (from 1): the learning rate is the schedule's at `t - 1`.
    fn rule_at(&self, t: u64) -> ElementwiseRule {
        let learning_rate = super::scheduled(self.learning_rate, &self.schedule, t - 1);
        let t = t as f32;
        ElementwiseRule::Adamax {
            learning_rate,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            beta_1_power: math::powf(self.beta_1, t),
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for Adamax {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    super::elementwise_update!();

    super::next_elementwise!();

    super::bookkeeping!("adamax");
}
