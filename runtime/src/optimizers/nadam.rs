//! [`Nadam`], as `keras.optimizers.Nadam`.

use super::{ElementwiseRule, Ema, GradientClip, Optimizer, Schedule, Slots};
use crate::math;

/// Adam with Nesterov momentum (Dozat 2015), Keras 3's form. With moments `m`, `v` (zero at
/// first), step `t` from 1, `u_t = beta_1 * (1 - 0.5 * 0.96^t)` and `U_t` the product of
/// `u_1 .. u_t` (kept across steps, as Keras's `_u_product`):
///
/// ```text
/// m += (g - m) * (1 - beta_1)
/// v += (g^2 - v) * (1 - beta_2)
/// m_hat = u_{t+1} * m / (1 - U_t * u_{t+1}) + (1 - u_t) * g / (1 - U_t)
/// v_hat = v / (1 - beta_2^t)
/// w -= m_hat * lr / (sqrt(v_hat) + epsilon)
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Nadam {
    /// Step size. Keras default 0.001.
    pub learning_rate: f32,
    /// A learning-rate schedule, used instead of `learning_rate` when set (Keras passes a
    /// `LearningRateSchedule` as `learning_rate`). Keras default none.
    pub schedule: Option<Schedule>,
    /// Decay of the first moment. Keras default 0.9.
    pub beta_1: f32,
    /// Decay of the second moment. Keras default 0.999.
    pub beta_2: f32,
    /// Added to `sqrt(v_hat)`. Keras default 1e-7.
    pub epsilon: f32,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// The weights' moving average (Keras `use_ema`). Keras default none.
    pub ema: Option<Ema>,
    /// Moments per weight, and the step count.
    pub state: Slots,
    /// The product of `u` over the steps so far (1 before the first).
    pub u_product: f32,
}

impl Default for Nadam {
    fn default() -> Nadam {
        Nadam {
            learning_rate: 0.001,
            schedule: None,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            weight_decay: None,
            clip: GradientClip::None,
            ema: None,
            state: Slots::new(),
            u_product: 1.0,
        }
    }
}

impl Nadam {
    /// `beta_1 * (1 - 0.5 * 0.96^t)`.
    fn u(&self, t: f32) -> f32 {
        self.beta_1 * (1.0 - 0.5 * math::powf(0.96, t))
    }

    /// This step's rule (after `step_begin`; a missing one counts as step 1).
    pub fn rule(&self) -> ElementwiseRule {
        self.rule_at(self.state.iterations().max(1), self.u_product)
    }

    /// Step `t`'s rule (from 1) with `u_product` the product of `u` over steps `1..=t`.
    fn rule_at(&self, t: u64, u_product: f32) -> ElementwiseRule {
        let learning_rate = super::scheduled(self.learning_rate, &self.schedule, t - 1);
        let t = t as f32;
        let u_t_1 = self.u(t + 1.0);
        ElementwiseRule::Nadam {
            learning_rate,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            u_t: self.u(t),
            u_t_1,
            u_product_t: u_product,
            u_product_t_1: u_product * u_t_1,
            beta_2_power: math::powf(self.beta_2, t),
            weight_decay: self.weight_decay,
        }
    }
}

impl Optimizer for Nadam {
    fn step_begin(&mut self) {
        self.state.step_begin();
        // Keras updates `_u_product` once per step, before any weight's update, in the
        // order `u_product * beta_1 * (1 - 0.5 * 0.96^t)`.
        let t = self.state.iterations() as f32;
        self.u_product = self.u_product * self.beta_1 * (1.0 - 0.5 * math::powf(0.96, t));
    }

    super::elementwise_update!();

    fn next_elementwise(&mut self) -> Option<(ElementwiseRule, &mut Slots)> {
        if self.ema.is_some() {
            return None;
        }
        // What `step_begin` will make of `u_product`, by the same operations.
        let t = self.state.iterations() + 1;
        let u_product = self.u_product * self.beta_1 * (1.0 - 0.5 * math::powf(0.96, t as f32));
        Some((self.rule_at(t, u_product), &mut self.state))
    }

    super::bookkeeping!(
        "nadam",
        extra_state = |s: &mut Nadam, visit: &mut dyn FnMut(&str, super::StateRef<'_>)| {
            visit("u_product", super::StateRef::Scalar(&mut s.u_product))
        },
        reset = |s: &mut Nadam| s.u_product = 1.0
    );
}
