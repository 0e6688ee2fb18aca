//! Keras's callbacks: the [`Callback`] trait whose hooks `fit` calls, the [`LogValues`] they
//! see and the [`Training`] handle through which they stop training, change the learning
//! rate and read or write the weights; and Keras 3's built-in callbacks with their arguments,
//! defaults and decisions: [`EarlyStopping`], [`ModelCheckpoint`], [`ReduceLROnPlateau`],
//! [`LearningRateScheduler`], [`CSVLogger`], [`TerminateOnNaN`] (and
//! [`History`](super::History), which is one too).
//!
//! `fit_with` takes them as a slice of `&mut dyn Callback`, so they stay the caller's and
//! can be read after training (`early_stopping.stopped_epoch`). With a model from the
//! facade's `kiln::model!` (which is why this example runs as the README's, not here):
//!
//! ```ignore
//! use kiln::callbacks::{EarlyStopping, ReduceLROnPlateau};
//! use kiln::{Adam, FitOptions, Loss, Model};
//!
//! kiln::model! { Net = Sequential([Input(shape = (2,)), Dense(1)]); }
//!
//! let x = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
//! let y = [1.0, 1.0, 2.0, 0.0];
//! let mut trainer = Net::new(1).compile(Adam::default(), Loss::MeanSquaredError);
//! let mut early_stopping = EarlyStopping {
//!     monitor: "loss".into(),
//!     patience: 3,
//!     restore_best_weights: true,
//!     ..EarlyStopping::default()
//! };
//! let mut plateau = ReduceLROnPlateau { monitor: "loss".into(), ..ReduceLROnPlateau::default() };
//! let options = FitOptions { epochs: 20, verbose: false, ..FitOptions::default() };
//! let history = trainer.fit_with(&x, &y, &options, &mut [&mut early_stopping, &mut plateau])?;
//! assert!(history.get("learning_rate").is_some()); // ReduceLROnPlateau logs the rate
//! # Ok::<(), kiln::Error>(())
//! ```
//!
//! Each built-in follows the Keras 3 source (`keras/src/callbacks/*.py`) decision by
//! decision, including how a value is compared with the best so far: Keras subtracts
//! `min_delta` from the logged value in double precision, then compares in float32 (JAX's
//! default), and so does kiln. `tests/callbacks.rs` feeds recorded histories through both.

use super::Trainable;
use crate::error::Error;
use crate::metrics::Metric;
use crate::optimizers::Optimizer;
use alloc::borrow::Cow;
use alloc::vec::Vec;

#[cfg(feature = "std")]
mod csv_logger;
mod early_stopping;
mod learning_rate_scheduler;
#[cfg(feature = "std")]
mod model_checkpoint;
mod monitor;
// Without `std` only `repr` is used (History, CSV); the file-name formatting is
// `ModelCheckpoint`'s, which needs `std`.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod pyformat;
mod reduce_lr_on_plateau;
mod terminate_on_nan;

#[cfg(feature = "std")]
pub use csv_logger::{CSVLogger, CsvFile};
pub use early_stopping::EarlyStopping;
pub use learning_rate_scheduler::LearningRateScheduler;
#[cfg(feature = "std")]
pub(crate) use model_checkpoint::write_file;
#[cfg(feature = "std")]
pub use model_checkpoint::{ModelCheckpoint, SaveFreq, StepCounter};
pub use monitor::Mode;
pub use reduce_lr_on_plateau::ReduceLROnPlateau;
pub use terminate_on_nan::TerminateOnNaN;

/// Keras's `logs` dictionary as callbacks see it: `(name, value)` pairs in the order Keras
/// builds them (`loss`, the metrics, then `val_loss` and `val_<metric>` at the end of an
/// epoch that validated). A callback may add or change entries (Keras's `ReduceLROnPlateau`
/// and `LearningRateScheduler` add `learning_rate`); the callbacks after it, and the
/// [`History`](super::History) that `fit` returns, see the change.
///
/// Per-step logs reuse one buffer: building them allocates nothing once it has grown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogValues {
    entries: Vec<(Cow<'static, str>, f32)>,
}

impl LogValues {
    /// No values.
    pub const fn new() -> LogValues {
        LogValues {
            entries: Vec::new(),
        }
    }

    /// The first value logged under `name`.
    pub fn get(&self, name: &str) -> Option<f32> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// Sets the (first) value under `name`, or adds it at the end.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: f32) {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Adds a value at the end, even under a name already present (a vector-valued metric
    /// logs one entry per class or threshold).
    pub fn push(&mut self, name: impl Into<Cow<'static, str>>, value: f32) {
        self.entries.push((name.into(), value));
    }

    /// Every `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f32)> {
        self.entries.iter().map(|(n, v)| (n.as_ref(), *v))
    }

    /// Whether nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every value (keeping the buffer).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Object-safe access to a trained model's weights, for callbacks (the model types
/// themselves have associated constants, so they cannot be `dyn`).
pub(crate) trait ModelAccess {
    fn names(&self) -> &'static [&'static str];
    fn weight(&self, index: usize) -> &[f32];
    fn weight_mut(&mut self, index: usize) -> &mut [f32];
    fn trainable(&self, index: usize) -> bool;
    fn to_bytes(&self) -> Vec<u8>;
}

impl<M: Trainable> ModelAccess for M {
    fn names(&self) -> &'static [&'static str] {
        M::WEIGHT_NAMES
    }
    fn weight(&self, index: usize) -> &[f32] {
        self.__weight(index)
    }
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        self.__weight_mut(index)
    }
    fn trainable(&self, index: usize) -> bool {
        M::UPDATES.get(index).is_none_or(|u| u.is_trainable())
    }
    fn to_bytes(&self) -> Vec<u8> {
        crate::saving::to_bytes(self)
    }
}

/// What a callback may do to the training under way (Keras's `self.model` inside a
/// callback): stop it, read and change the learning rate, read and write the weights.
pub struct Training<'a> {
    pub(crate) model: &'a mut dyn ModelAccess,
    pub(crate) optimizer: &'a mut dyn Optimizer,
    pub(crate) stop: &'a mut bool,
    pub(crate) metrics: &'a [(&'static str, Metric)],
    pub(crate) epochs: usize,
    pub(crate) steps: Option<usize>,
}

impl Training<'_> {
    /// Ends training after the current step (at the end of the epoch when called from
    /// `on_epoch_end`): Keras's `model.stop_training = True`.
    pub fn stop_training(&mut self) {
        *self.stop = true;
    }

    /// Whether a callback asked to stop.
    pub fn stop_requested(&self) -> bool {
        *self.stop
    }

    /// The learning rate of the next step (Keras's `optimizer.learning_rate`).
    pub fn learning_rate(&self) -> f32 {
        self.optimizer.learning_rate()
    }

    /// Sets the learning rate; an error for an optimizer built with a schedule, as Keras.
    pub fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), Error> {
        self.optimizer.set_learning_rate(learning_rate)
    }

    /// The optimizer.
    pub fn optimizer(&mut self) -> &mut dyn Optimizer {
        &mut *self.optimizer
    }

    /// The model's weight names (`Model::WEIGHT_NAMES`).
    pub fn weight_names(&self) -> &'static [&'static str] {
        self.model.names()
    }

    /// Every weight's values, in `weight_names` order (Keras's `model.get_weights()`).
    pub fn get_weights(&self) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        self.copy_weights_into(&mut out);
        out
    }

    /// [`Training::get_weights`] into `out`, reusing its buffers.
    pub fn copy_weights_into(&self, out: &mut Vec<Vec<f32>>) {
        let count = self.model.names().len();
        out.resize_with(count, Vec::new);
        for (index, buffer) in out.iter_mut().enumerate() {
            buffer.clear();
            buffer.extend_from_slice(self.model.weight(index));
        }
    }

    /// Replaces every weight (Keras's `model.set_weights`). Nothing is written unless there
    /// is one buffer per weight, each of the weight's length.
    pub fn set_weights(&mut self, weights: &[Vec<f32>]) -> Result<(), Error> {
        let names = self.model.names();
        if weights.len() != names.len() {
            return Err(Error::Callback {
                callback: "Training::set_weights",
                reason: alloc::format!(
                    "the model has {} weights, {} were given",
                    names.len(),
                    weights.len()
                ),
            });
        }
        for (index, values) in weights.iter().enumerate() {
            let expected = self.model.weight(index).len();
            if values.len() != expected {
                return Err(Error::Callback {
                    callback: "Training::set_weights",
                    reason: alloc::format!(
                        "weight `{}` takes {expected} values, {} were given",
                        names[index],
                        values.len()
                    ),
                });
            }
        }
        for (index, values) in weights.iter().enumerate() {
            self.model.weight_mut(index).copy_from_slice(values);
        }
        Ok(())
    }

    /// The weights as a safetensors file (`Model::weights_to_bytes`).
    pub fn weights_to_bytes(&self) -> Vec<u8> {
        self.model.to_bytes()
    }

    /// Epochs of the `fit` call (Keras's `self.params["epochs"]`).
    pub fn epochs(&self) -> usize {
        self.epochs
    }

    /// Steps per epoch when known (Keras's `self.params["steps"]`).
    pub fn steps(&self) -> Option<usize> {
        self.steps
    }

    /// Whether a larger value of `name` is better, as Keras's `mode = "auto"` decides
    /// (`MonitorCallback._set_monitor_op`): `loss` and `val_loss` are to be minimised; a
    /// compiled metric (with or without `val_`) follows its direction (accuracies, AUC,
    /// precision, recall, F1 up; error metrics down); anything else is unknown (`None`).
    pub fn higher_is_better(&self, name: &str) -> Option<bool> {
        let name = name.strip_prefix("val_").unwrap_or(name);
        if name == "loss" {
            return Some(false);
        }
        self.metrics
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| !matches!(m, Metric::Loss(_) | Metric::RootMeanSquaredError))
    }
}

/// A hook into `fit`, with Keras's `keras.callbacks.Callback` methods. Every method has an
/// empty default; `logs` are Keras's (see [`LogValues`]), `training` is Keras's
/// `self.model`. Returning an error ends `fit` with it.
///
/// Order of calls, as Keras 3's `fit`: `on_train_begin`; per epoch `on_epoch_begin`, per
/// step `on_train_batch_begin` then `on_train_batch_end` (logs: the epoch's running loss
/// and metrics), then, in an epoch that validates, `on_test_begin` and `on_test_end`
/// (logs: the validation results), then `on_epoch_end` (logs: the epoch's results and
/// `val_*`); `on_train_end` (logs: the last epoch's) once training ends without an error.
/// A stop requested in a step ends the epoch after that step (its `on_epoch_end` still
/// runs); requested in `on_epoch_end`, training ends there.
#[allow(unused_variables)]
pub trait Callback {
    /// Before the first epoch.
    fn on_train_begin(
        &mut self,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// After the last epoch (not after an error).
    fn on_train_end(
        &mut self,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// At the start of epoch `epoch` (from 0, or from `initial_epoch`).
    fn on_epoch_begin(
        &mut self,
        epoch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// At the end of epoch `epoch`, with its results.
    fn on_epoch_end(
        &mut self,
        epoch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// Before step `batch` (from 0 in each epoch).
    fn on_train_batch_begin(
        &mut self,
        batch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// After step `batch`, with the epoch's running loss and metrics.
    fn on_train_batch_end(
        &mut self,
        batch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// Before the validation of an epoch.
    fn on_test_begin(
        &mut self,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// After the validation of an epoch, with its results (names without `val_`).
    fn on_test_end(
        &mut self,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
}

/// [`History`](super::History) is a callback too (Keras's `keras.callbacks.History`): it
/// records every epoch's logs, so an instance passed to `fit_with` keeps them across calls.
impl Callback for super::History {
    fn on_epoch_end(
        &mut self,
        epoch: usize,
        logs: &mut LogValues,
        _training: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.record(epoch, logs);
        Ok(())
    }
}
