//! [`Adam`], as `keras.optimizers.Adam`; [`super::AdamW`] shares its step.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};
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
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
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
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// Moments per weight, and the step count.
    pub state: Slots,
}

impl Default for Adam {
    fn default() -> Adam {
        Adam {
            learning_rate: 0.001,
            schedule: None,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
        }
    }
}

impl Adam {
    /// This step's rule (after `step_begin`). `t = 0` would divide by `1 - beta_1^0 = 0`: a
    /// missing `step_begin` counts as step 1.
    pub fn rule(&self) -> ElementwiseRule {
        self.rule_at(self.state.iterations().max(1))
    }

    /// Step `t`'s rule (from 1): the learning rate is the schedule's at `t - 1`.
    pub(super) fn rule_at(&self, t: u64) -> ElementwiseRule {
        let lr = super::scheduled(self.learning_rate, &self.schedule, t - 1);
        let t = t as f32;
        let (beta_1, beta_2) = (self.beta_1, self.beta_2);
        ElementwiseRule::Adam {
            learning_rate: lr,
            alpha: lr * math::sqrt(1.0 - math::powf(beta_2, t)) / (1.0 - math::powf(beta_1, t)),
            beta_1,
            beta_2,
            epsilon: self.epsilon,
            amsgrad: self.amsgrad,
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for Adam {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    super::elementwise_update!();

    super::next_elementwise!();

    super::bookkeeping!("adam");
}
