//! [`Lion`], as `keras.optimizers.Lion`.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};

/// Lion, "evolved sign momentum" (Chen et al. 2023), Keras 3's form. With a momentum `m`
/// (zero at first):
///
/// ```text
/// w -= lr * sign(beta_1 * m + (1 - beta_1) * g)
/// m = beta_2 * m + (1 - beta_2) * g
/// ```
///
/// Every entry moves by exactly `lr` (or not at all), so Lion wants a rate 3-10 times
/// smaller than Adam's.
#[derive(Clone, Debug, PartialEq)]
pub struct Lion {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
    /// Weight of the momentum in the step's sign. Keras default 0.9.
    pub beta_1: f32,
    /// Decay of the momentum. Keras default 0.99.
    pub beta_2: f32,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// Momentum per weight, and the step count.
    pub state: Slots,
}

impl Default for Lion {
    fn default() -> Lion {
        Lion {
            learning_rate: 0.001,
            schedule: None,
            beta_1: 0.9,
            beta_2: 0.99,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
        }
    }
}

impl Lion {
    /// This step's rule.
    pub fn rule(&self) -> ElementwiseRule {
        self.rule_at(self.state.iterations().max(1))
    }

    /// Step `t`'s rule (from 1): the learning rate is the schedule's at `t - 1`.
    fn rule_at(&self, t: u64) -> ElementwiseRule {
        ElementwiseRule::Lion {
            learning_rate: super::scheduled(self.learning_rate, &self.schedule, t - 1),
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for Lion {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    super::elementwise_update!();

    super::next_elementwise!();

    super::bookkeeping!("lion");
}
