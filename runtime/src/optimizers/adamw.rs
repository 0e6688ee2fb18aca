//! [`AdamW`], as `keras.optimizers.AdamW`: Adam with decoupled weight decay on by default.

use super::{Adam, ElementwiseRule, GradientClip, Optimizer, Slots};

/// Adam with decoupled weight decay (Loshchilov & Hutter 2019), Keras 3's `AdamW`: each
/// step first shrinks the weight, `w -= w * weight_decay * lr`, then takes the
/// [`Adam`] step (the decay does not pass through the moments).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// The decay rate. Keras default 0.004.
    pub weight_decay: f32,
    /// The Adam step and its hyperparameters, with Keras's `AdamW` defaults (those of
    /// [`Adam`]); its own `weight_decay` field is ignored in favour of the one above. Its
    /// `schedule`, `clip` and `ema` are AdamW's.
    pub adam: Adam,
}

impl Default for AdamW {
    fn default() -> AdamW {
        AdamW {
            weight_decay: 0.004,
            adam: Adam::default(),
        }
    }
}

impl Optimizer for AdamW {
    fn step_begin(&mut self) {
        self.adam.step_begin();
    }

    fn update(&mut self, slot: usize, params: &mut [f32], grads: &[f32]) {
        self.adam.weight_decay = Some(self.weight_decay);
        self.adam.update(slot, params, grads);
    }

    fn elementwise(&mut self) -> Option<(ElementwiseRule, &mut Slots)> {
        if self.adam.ema.is_some() {
            return None;
        }
        let mut rule = self.adam.rule();
        if let ElementwiseRule::Adam { weight_decay, .. } = &mut rule {
            *weight_decay = Some(self.weight_decay);
        }
        Some((rule, &mut self.adam.state))
    }

    fn next_elementwise(&mut self) -> Option<(ElementwiseRule, &mut Slots)> {
        if self.adam.ema.is_some() {
            return None;
        }
        let mut rule = self.adam.rule_at(self.adam.state.iterations() + 1);
        if let ElementwiseRule::Adam { weight_decay, .. } = &mut rule {
            *weight_decay = Some(self.weight_decay);
        }
        Some((rule, &mut self.adam.state))
    }

    fn iterations(&self) -> u64 {
        self.adam.iterations()
    }

    fn learning_rate(&self) -> f32 {
        self.adam.learning_rate()
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), crate::Error> {
        self.adam.set_learning_rate(learning_rate)
    }

    fn finalize_variable_values(&mut self, slot: usize, params: &mut [f32]) {
        self.adam.finalize_variable_values(slot, params);
    }

    fn gradient_clip(&self) -> GradientClip {
        self.adam.clip
    }

    fn reset(&mut self) {
        self.adam.reset();
    }

    fn visit_state(&mut self, visit: &mut dyn FnMut(&str, super::StateRef<'_>)) -> bool {
        self.adam.visit_state(visit)
    }

    fn name(&self) -> &'static str {
        "adamw"
    }
}
