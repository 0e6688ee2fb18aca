//! [`Adadelta`], as `keras.optimizers.Adadelta`.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};

/// Adadelta (Zeiler 2012), Keras 3's form. With accumulators `a_g`, `a_d` (zero at first):
///
/// ```text
/// a_g = rho * a_g + (1 - rho) * g^2
/// delta = -sqrt(a_d + epsilon) * g / sqrt(a_g + epsilon)
/// a_d = rho * a_d + (1 - rho) * delta^2
/// w += lr * delta
/// ```
///
/// Keras 3 keeps a learning rate (default 0.001), which the paper's form has as 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Adadelta {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
    /// Decay of both accumulators. Keras default 0.95.
    pub rho: f32,
    /// Added under both square roots. Keras default 1e-7.
    pub epsilon: f32,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// Accumulators per weight, and the step count.
    pub state: Slots,
}

impl Default for Adadelta {
    fn default() -> Adadelta {
        Adadelta {
            learning_rate: 0.001,
            schedule: None,
            rho: 0.95,
            epsilon: 1e-7,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
        }
    }
}

impl Adadelta {
    /// This step's rule.
    pub fn rule(&self) -> ElementwiseRule {
        self.rule_at(self.state.iterations().max(1))
    }

    /// Step `t`'s rule (from 1): the learning rate is the schedule's at `t - 1`.
    fn rule_at(&self, t: u64) -> ElementwiseRule {
        ElementwiseRule::Adadelta {
            learning_rate: super::scheduled(self.learning_rate, &self.schedule, t - 1),
            rho: self.rho,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for Adadelta {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    super::elementwise_update!();

    super::next_elementwise!();

    super::bookkeeping!("adadelta");
}
