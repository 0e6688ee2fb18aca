//! [`Sgd`]: gradient descent, optionally with (Nesterov) momentum, as `keras.optimizers.SGD`.

use super::{apply_weight_decay, check, GradientClip, Optimizer, Slots};

/// Stochastic gradient descent (Keras `SGD`).
///
/// Without momentum: `w -= lr * g`. With momentum, a velocity `v` (zero at first):
/// `v = momentum * v - lr * g`, then `w += v`, or for Nesterov
/// `w += momentum * v - lr * g` (with the new `v`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Step size. Keras default 0.01.
    pub learning_rate: f32,
    /// Velocity decay in `[0, 1]`; 0 is plain gradient descent. Keras default 0.
    pub momentum: f32,
    /// Nesterov momentum. Keras default false.
    pub nesterov: bool,
    /// Decoupled weight decay (`w -= w * wd * lr` before each step). Keras default none.
    pub weight_decay: Option<f32>,
    /// Gradient clipping. Keras default none.
    pub clip: GradientClip,
    /// Velocities per weight, and the step count.
    pub state: Slots,
}

impl Default for Sgd {
    fn default() -> Sgd {
        Sgd {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
            weight_decay: None,
            clip: GradientClip::None,
            state: Slots::new(),
        }
    }
}

impl Optimizer for Sgd {
    fn step_begin(&mut self) {
        self.state.step_begin();
    }

    fn update(&mut self, slot: usize, params: &mut [f32], grads: &[f32]) {
        check(params, grads);
        let lr = self.learning_rate;
        apply_weight_decay(params, self.weight_decay, lr);
        // Keras keeps no velocity at all when momentum is 0.
        if self.momentum == 0.0 {
            for (w, &g) in params.iter_mut().zip(grads) {
                *w -= g * lr;
            }
            return;
        }
        let momentum = self.momentum;
        let velocity = self.state.get(slot, params.len(), 1, 0.0);
        for ((w, &g), m) in params.iter_mut().zip(grads).zip(velocity) {
            *m = *m * momentum - g * lr;
            if self.nesterov {
                *w += *m * momentum - g * lr;
            } else {
                *w += *m;
            }
        }
    }

    super::bookkeeping!("sgd");
}
