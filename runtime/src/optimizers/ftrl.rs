//! [`Ftrl`], as `keras.optimizers.Ftrl`.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};

/// Follow The Regularized Leader (McMahan et al. 2013), Keras 3's form. With an accumulator
/// `n` (from `initial_accumulator_value`), a linear term `z` (zero at first),
/// `p = -learning_rate_power` and `l2 = l2_regularization_strength + beta / (2 * lr)`:
///
/// ```text
/// n' = n + g^2
/// z += g + 2 * l2_shrinkage * w - (n'^p - n^p) / lr * w
/// w = (clip(z, -l1, l1) - z) / (n'^p / lr + 2 * l2)
/// n = n'
/// ```
///
/// The shrinkage enters the linear term only, not the accumulator.
#[derive(Clone, Debug, PartialEq)]
pub struct Ftrl {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
    /// How the rate falls as the accumulator grows, at most 0. Keras default -0.5.
    pub learning_rate_power: f32,
    /// Where the accumulators start, at least 0. Keras default 0.1.
    pub initial_accumulator_value: f32,
    /// L1 regularization, at least 0. Keras default 0.
    pub l1_regularization_strength: f32,
    /// L2 regularization, at least 0. Keras default 0.
    pub l2_regularization_strength: f32,
    /// L2 shrinkage, a magnitude penalty on the linear term, at least 0. Keras default 0.
    pub l2_shrinkage_regularization_strength: f32,
    /// The `beta` of the paper's per-coordinate rate. Keras default 0.
    pub beta: f32,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// Accumulators and linear terms per weight, and the step count.
    pub state: Slots,
}

impl Default for Ftrl {
    fn default() -> Ftrl {
        Ftrl {
            learning_rate: 0.001,
            schedule: None,
            learning_rate_power: -0.5,
            initial_accumulator_value: 0.1,
            l1_regularization_strength: 0.0,
            l2_regularization_strength: 0.0,
            l2_shrinkage_regularization_strength: 0.0,
            beta: 0.0,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
        }
    }
}

impl Ftrl {
    /// This step's rule.
    pub fn rule(&self) -> ElementwiseRule {
        let lr = super::step_rate(self.learning_rate, &self.schedule, &self.state);
        ElementwiseRule::Ftrl {
            learning_rate: lr,
            learning_rate_power: self.learning_rate_power,
            initial_accumulator_value: self.initial_accumulator_value,
            l1_regularization_strength: self.l1_regularization_strength,
            l2_reg: self.l2_regularization_strength + self.beta / (2.0 * lr),
            l2_shrinkage_regularization_strength: self.l2_shrinkage_regularization_strength,
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for Ftrl {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    super::elementwise_update!();

    super::bookkeeping!("ftrl");
}
