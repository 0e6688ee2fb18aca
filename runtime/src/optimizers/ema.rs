//! [`Ema`]: Keras's `use_ema`, an exponential moving average of every trained weight kept
//! by the optimizer, written over the weights every `ema_overwrite_frequency` steps and when
//! `fit` ends (`finalize_variable_values`).

use super::Slots;

/// The moving average of the weights (Keras `use_ema = True`), as Keras 3's base optimizer
/// keeps it: after each weight's update (weight decay and the optimizer's rule; before
/// constraints),
///
/// ```text
/// m = 0 on the first step (iterations == 0), else ema_momentum
/// average = m * average + (1 - m) * w
/// ```
///
/// so the first step copies the weight. With `overwrite_frequency = Some(k)`, the weights
/// take their averages' values after every step whose count `t` (from 1) is a multiple of
/// `k`; with `None` only [`super::Optimizer::finalize_variable_values`] does, which `fit`
/// calls after its last epoch (as Keras's `fit`; `train_on_batch` never does).
///
/// An optimizer with an `Ema` updates each weight whole, on one thread.
#[derive(Clone, Debug, PartialEq)]
pub struct Ema {
    /// Weight of the old average. Keras default 0.99.
    pub momentum: f32,
    /// Overwrite the weights with their averages every this many steps. Keras default none
    /// (`Some(0)` counts as none).
    pub overwrite_frequency: Option<u64>,
    /// The averages per weight.
    pub averages: Slots,
}

impl Default for Ema {
    fn default() -> Ema {
        Ema {
            momentum: 0.99,
            overwrite_frequency: None,
            averages: Slots::new(),
        }
    }
}

impl Ema {
    /// Folds the just-updated weight `params` of `slot` into its average at step `t` (from
    /// 1), then overwrites it with the average when `t` is a multiple of the frequency.
    pub fn update(&mut self, slot: usize, params: &mut [f32], t: u64) {
        let momentum = if t > 1 { self.momentum } else { 0.0 };
        let keep = 1.0 - momentum;
        let average = self.averages.get(slot, params.len(), 1, 0.0);
        for (a, &w) in average.iter_mut().zip(params.iter()) {
            *a = momentum * *a + keep * w;
        }
        if let Some(k) = self.overwrite_frequency.filter(|&k| k > 0) {
            if t.is_multiple_of(k) {
                params.copy_from_slice(average);
            }
        }
    }

    /// Writes the average of `slot` over `params` (nothing before its first update).
    pub fn overwrite(&mut self, slot: usize, params: &mut [f32]) {
        if self
            .averages
            .buffers
            .get(slot)
            .is_some_and(|b| !b.is_empty())
        {
            params.copy_from_slice(self.averages.get(slot, params.len(), 1, 0.0));
        }
    }

    /// Forgets the averages.
    pub fn reset(&mut self) {
        self.averages.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_copies_then_averages_and_overwrites_on_schedule() {
        let mut ema = Ema {
            momentum: 0.5,
            overwrite_frequency: Some(2),
            ..Ema::default()
        };
        let mut w = [4.0];
        ema.update(0, &mut w, 1);
        assert_eq!(w, [4.0]);
        w = [8.0];
        ema.update(0, &mut w, 2);
        assert_eq!(w, [6.0], "step 2 overwrites with 0.5 * 4 + 0.5 * 8");
        w = [10.0];
        ema.update(0, &mut w, 3);
        assert_eq!(w, [10.0]);
        ema.overwrite(0, &mut w);
        assert_eq!(w, [8.0]);
        let mut untouched = [1.0];
        ema.overwrite(5, &mut untouched);
        assert_eq!(untouched, [1.0]);
    }
}
