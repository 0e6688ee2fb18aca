//! [`LearningRateScheduler`], as `keras.callbacks.LearningRateScheduler`.

use super::{Callback, LogValues, Training};
use crate::error::Error;

/// Sets the learning rate at the start of each epoch to `schedule(epoch, rate)` (Keras 3's
/// `LearningRateScheduler`): `epoch` counts from 0 (or `initial_epoch`), `rate` is the
/// current rate widened to f64 as Keras's `float(optimizer.learning_rate)`, and the result
/// is stored as f32. Logs `learning_rate` at each epoch end. The optimizer must have a
/// constant rate (a scheduled one is an error, as Keras).
///
/// ```
/// use kiln_runtime::callbacks::LearningRateScheduler;
/// // Keras's example: keep the rate for 10 epochs, then decay it by exp(-0.1) per epoch.
/// let scheduler = LearningRateScheduler::new(|epoch, lr| {
///     if epoch < 10 { lr } else { lr * (-0.1f64).exp() }
/// });
/// # let _ = scheduler;
/// ```
pub struct LearningRateScheduler<F> {
    /// The function of the epoch and the current rate.
    pub schedule: F,
}

impl<F: FnMut(usize, f64) -> f64> LearningRateScheduler<F> {
    /// A scheduler calling `schedule`.
    pub fn new(schedule: F) -> Self {
        LearningRateScheduler { schedule }
    }
}

impl<F: FnMut(usize, f64) -> f64> Callback for LearningRateScheduler<F> {
    fn on_epoch_begin(
        &mut self,
        epoch: usize,
        _logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        let rate = (self.schedule)(epoch, f64::from(training.learning_rate()));
        training.set_learning_rate(rate as f32)
    }

    fn on_epoch_end(
        &mut self,
        _epoch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        logs.set("learning_rate", training.learning_rate());
        Ok(())
    }
}
