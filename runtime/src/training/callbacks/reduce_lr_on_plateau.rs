//! [`ReduceLROnPlateau`], as `keras.callbacks.ReduceLROnPlateau`.

use super::monitor::{is_improvement, Mode};
use super::{Callback, LogValues, Training};
use crate::error::Error;
use alloc::string::String;

/// Multiplies the learning rate by `factor` when a monitored value has not improved for
/// `patience` epochs (Keras 3's `ReduceLROnPlateau`, decision for decision).
///
/// At each epoch end it logs `learning_rate` (the rate before any change), counts down a
/// `cooldown` after a reduction (no waiting meanwhile), and reduces when `wait` reaches
/// `patience`: `new = max(old * factor, min_lr)` in double precision, stored as f32, only
/// while `old > min_lr`. The optimizer must have a constant rate (a scheduled one is an
/// error, as Keras).
#[derive(Clone, Debug)]
pub struct ReduceLROnPlateau {
    /// The logged value to watch. Keras default `"val_loss"`.
    pub monitor: String,
    /// The rate's factor at each reduction, below 1. Keras default 0.1.
    pub factor: f64,
    /// Epochs without improvement before a reduction. Keras default 10.
    pub patience: usize,
    /// Whether the value should fall or rise. Keras default auto.
    pub mode: Mode,
    /// Changes smaller than this are not improvements. Keras default 1e-4.
    pub min_delta: f64,
    /// Epochs after a reduction before waiting starts again. Keras default 0.
    pub cooldown: usize,
    /// The rate is never reduced below this. Keras default 0.
    pub min_lr: f64,
    /// Epochs since the last improvement (Keras's `wait`).
    pub wait: usize,
    /// Epochs of cooldown left (Keras's `cooldown_counter`).
    pub cooldown_counter: usize,
    /// The best value so far (Keras's `best`).
    pub best: Option<f64>,
    /// The direction in use: `true` when higher is better. `None` until the first epoch
    /// end resolves `mode` (Keras's `monitor_op`); set it to skip the resolution.
    pub higher_is_better: Option<bool>,
}

impl Default for ReduceLROnPlateau {
    fn default() -> Self {
        ReduceLROnPlateau {
            monitor: "val_loss".into(),
            factor: 0.1,
            patience: 10,
            mode: Mode::Auto,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            wait: 0,
            cooldown_counter: 0,
            best: None,
            higher_is_better: None,
        }
    }
}

impl Callback for ReduceLROnPlateau {
    fn on_train_begin(
        &mut self,
        _logs: &mut LogValues,
        _training: &mut Training<'_>,
    ) -> Result<(), Error> {
        if self.factor >= 1.0 {
            return Err(Error::Callback {
                callback: "ReduceLROnPlateau",
                reason: alloc::format!("does not support a factor >= 1.0, found {}", self.factor),
            });
        }
        self.best = None;
        self.cooldown_counter = 0;
        self.wait = 0;
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        _epoch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        let higher = match self.higher_is_better {
            Some(h) => h,
            None => *self.higher_is_better.insert(self.mode.higher_is_better(
                &self.monitor,
                training,
                "ReduceLROnPlateau",
            )?),
        };
        logs.set("learning_rate", training.learning_rate());
        let Some(current) = logs.get(&self.monitor) else {
            return Ok(());
        };
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if is_improvement(higher, self.min_delta, current, self.best) {
            self.best = Some(f64::from(current));
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let old = training.learning_rate();
                if old > self.min_lr as f32 {
                    let new = (f64::from(old) * self.factor).max(self.min_lr);
                    training.set_learning_rate(new as f32)?;
                    self.cooldown_counter = self.cooldown;
                    self.wait = 0;
                }
            }
        }
        Ok(())
    }
}
