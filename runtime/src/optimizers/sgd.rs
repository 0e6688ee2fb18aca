//! [`Sgd`]: gradient descent, optionally with (Nesterov) momentum, as `keras.optimizers.SGD`.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};

/// Stochastic gradient descent (Keras `SGD`).
///
/// Without momentum: `w -= lr * g`. With momentum, a velocity `v` (zero at first):
/// `v = momentum * v - lr * g`, then `w += v`, or for Nesterov
/// `w += momentum * v - lr * g` (with the new `v`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Step size. Keras default 0.01.
    pub learning_rate: f32,
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
    /// Velocity decay in `[0, 1]`; 0 is plain gradient descent. Keras default 0.
    pub momentum: f32,
    /// Nesterov momentum. Keras default false.
    pub nesterov: bool,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// Velocities per weight, and the step count.
    pub state: Slots,
}

impl Default for Sgd {
    fn default() -> Sgd {
        Sgd {
            learning_rate: 0.01,
            schedule: None,
            momentum: 0.0,
            nesterov: false,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
        }
    }
}

impl Sgd {
    /// This step's rule.
    pub fn rule(&self) -> ElementwiseRule {
        self.rule_at(self.state.iterations().max(1))
    }

    /// Step `t`'s rule (from 1): the learning rate is the schedule's at `t - 1`.
    fn rule_at(&self, t: u64) -> ElementwiseRule {
        ElementwiseRule::Sgd {
            learning_rate: super::scheduled(self.learning_rate, &self.schedule, t - 1),
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for Sgd {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    super::elementwise_update!();

    super::next_elementwise!();

    super::bookkeeping!("sgd");
}
