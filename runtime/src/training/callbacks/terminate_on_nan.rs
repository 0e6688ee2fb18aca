//! [`TerminateOnNaN`], as `keras.callbacks.TerminateOnNaN`.

use super::{Callback, LogValues, Training};
use crate::error::Error;

/// Stops training after a step whose logged loss is NaN or infinite (Keras 3's
/// `TerminateOnNaN`; with `raise_error`, `fit` ends with an error instead).
///
/// kiln's `fit` already refuses a step whose loss or gradient is not finite, or whose
/// update would make a weight or the optimizer's state non-finite, and returns
/// [`Error::Diverged`] with the weights and the optimizer state from before that step;
/// this callback is for losses a callback earlier in the list rewrites, and for scripts
/// translated from Keras.
#[derive(Clone, Copy, Debug, Default)]
pub struct TerminateOnNaN {
    /// Return an error rather than stop quietly. Keras default false.
    pub raise_error: bool,
}

impl Callback for TerminateOnNaN {
    fn on_train_batch_end(
        &mut self,
        batch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        if let Some(loss) = logs.get("loss") {
            if !loss.is_finite() {
                if self.raise_error {
                    return Err(Error::Callback {
                        callback: "TerminateOnNaN",
                        reason: alloc::format!(
                            "NaN or Inf loss encountered at batch {batch}. Loss value: {loss}"
                        ),
                    });
                }
                training.stop_training();
            }
        }
        Ok(())
    }
}
