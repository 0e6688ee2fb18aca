//! [`EarlyStopping`], as `keras.callbacks.EarlyStopping`.

use super::monitor::{is_improvement, Mode};
use super::{Callback, LogValues, Training};
use crate::error::Error;
use alloc::string::String;
use alloc::vec::Vec;

/// Stops training when a monitored value has stopped improving (Keras 3's
/// `EarlyStopping`, decision for decision).
///
/// At the end of each epoch from `start_from_epoch` on, the value counts as an improvement
/// when it beats the best so far by more than `min_delta`; `patience` epochs without one
/// (and past epoch 0) stop training. With a `baseline`, an improvement resets the patience
/// only once it also beats the baseline. With `restore_best_weights`, the weights of the
/// best epoch are put back when training ends — /// this callback's epochs: not when `fit` ends with an error (Keras's `on_train_end` runs only
/// when training finished), whether or not it stopped early.
///
/// A missing `monitor` value skips the epoch (Keras warns).
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    /// The logged value to watch. Keras default `"val_loss"`.
    pub monitor: String,
    /// Changes smaller than this are not improvements. Keras default 0.
    pub min_delta: f64,
    /// Epochs without improvement before stopping. Keras default 0.
    pub patience: usize,
    /// Whether the value should fall or rise. Keras default auto.
    pub mode: Mode,
    /// A value to reach before patience is reset. Keras default none.
    pub baseline: Option<f64>,
    /// Put back the best epoch's weights at the end. Keras default false.
    pub restore_best_weights: bool,
    /// Epochs to wait before watching at all (a warm-up). Keras default 0.
    pub start_from_epoch: usize,
    /// Epochs since the last improvement (Keras's `wait`).
    pub wait: usize,
    /// The epoch training was stopped at, or 0 (Keras's `stopped_epoch`).
    pub stopped_epoch: usize,
    /// The best value so far (Keras's `best`).
    pub best: Option<f64>,
    /// The epoch of the best value (Keras's `best_epoch`).
    pub best_epoch: usize,
    /// The best epoch's weights, with `restore_best_weights`.
    pub best_weights: Option<Vec<Vec<f32>>>,
    /// The direction in use: `true` when higher is better. `None` until the first epoch
    /// end resolves `mode` (Keras's `monitor_op`); set it to skip the resolution.
    pub higher_is_better: Option<bool>,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping {
            monitor: "val_loss".into(),
            min_delta: 0.0,
            patience: 0,
            mode: Mode::Auto,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            wait: 0,
            stopped_epoch: 0,
            best: None,
            best_epoch: 0,
            best_weights: None,
            higher_is_better: None,
        }
    }
}

impl Callback for EarlyStopping {
    fn on_train_begin(
        &mut self,
        _logs: &mut LogValues,
        _training: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.wait = 0;
        self.stopped_epoch = 0;
        self.best = None;
        self.best_weights = None;
        self.best_epoch = 0;
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        epoch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        let higher = match self.higher_is_better {
            Some(h) => h,
            None => *self.higher_is_better.insert(self.mode.higher_is_better(
                &self.monitor,
                training,
                "EarlyStopping",
            )?),
        };
        let Some(current) = logs.get(&self.monitor) else {
            return Ok(());
        };
        if epoch < self.start_from_epoch {
            return Ok(());
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            self.best_weights = Some(training.get_weights());
            self.best_epoch = epoch;
        }
        self.wait += 1;
        if is_improvement(higher, self.min_delta, current, self.best) {
            self.best = Some(f64::from(current));
            self.best_epoch = epoch;
            if self.restore_best_weights {
                let weights = self.best_weights.get_or_insert_with(Vec::new);
                training.copy_weights_into(weights);
            }
            if self.baseline.is_none()
                || is_improvement(higher, self.min_delta, current, self.baseline)
            {
                self.wait = 0;
            }
            return Ok(());
        }
        if self.wait >= self.patience && epoch > 0 {
            self.stopped_epoch = epoch;
            training.stop_training();
        }
        Ok(())
    }

    fn on_train_end(
        &mut self,
        _logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        if self.restore_best_weights {
            if let Some(weights) = &self.best_weights {
                training.set_weights(weights)?;
            }
        }
        Ok(())
    }
}
