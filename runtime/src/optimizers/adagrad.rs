//! [`Adagrad`], as `keras.optimizers.Adagrad`.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};

/// Adagrad (Duchi et al. 2011), Keras 3's form. With an accumulator `s` that starts at
/// `initial_accumulator_value`: `s += g^2`, then `w -= lr * g / sqrt(s + epsilon)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Adagrad {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
    /// Where the accumulators start. Keras default 0.1.
    pub initial_accumulator_value: f32,
    /// Added under the square root. Keras default 1e-7.
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

impl Default for Adagrad {
    fn default() -> Adagrad {
        Adagrad {
            learning_rate: 0.001,
            schedule: None,
            initial_accumulator_value: 0.1,
            epsilon: 1e-7,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
        }
    }
}

impl Adagrad {
    /// This step's rule.
    pub fn rule(&self) -> ElementwiseRule {
        self.rule_at(self.state.iterations().max(1))
    }

    /// Step `t`'s rule (from 1): the learning rate is the schedule's at `t - 1`.
    fn rule_at(&self, t: u64) -> ElementwiseRule {
        ElementwiseRule::Adagrad {
            learning_rate: super::scheduled(self.learning_rate, &self.schedule, t - 1),
            epsilon: self.epsilon,
            initial_accumulator_value: self.initial_accumulator_value,
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for Adagrad {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    super::elementwise_update!();

    super::next_elementwise!();

    super::bookkeeping!("adagrad");
}
