//! [`RmsProp`], as `keras.optimizers.RMSprop`.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};

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
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
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
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// Moving averages per weight, and the step count.
    pub state: Slots,
}

impl Default for RmsProp {
    fn default() -> RmsProp {
        RmsProp {
            learning_rate: 0.001,
            schedule: None,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
        }
    }
}

impl RmsProp {
    /// This step's rule.
    pub fn rule(&self) -> ElementwiseRule {
        self.rule_at(self.state.iterations().max(1))
    }

    /// Step `t`'s rule (from 1): the learning rate is the schedule's at `t - 1`.
    fn rule_at(&self, t: u64) -> ElementwiseRule {
        ElementwiseRule::RmsProp {
            learning_rate: super::scheduled(self.learning_rate, &self.schedule, t - 1),
            rho: self.rho,
            momentum: self.momentum,
            epsilon: self.epsilon,
            centered: self.centered,
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for RmsProp {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    super::elementwise_update!();

    super::next_elementwise!();

    super::bookkeeping!("rmsprop");
}
