//! [`ModelCheckpoint`], as `keras.callbacks.ModelCheckpoint` with `save_weights_only`.

use super::monitor::{is_improvement, Mode};
use super::pyformat::{self, Value};
use super::{Callback, LogValues, Training};
use crate::error::Error;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// When [`ModelCheckpoint`] saves (Keras's `save_freq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SaveFreq {
    /// At the end of every epoch (Keras's default `"epoch"`).
    #[default]
    Epoch,
    /// After every this many steps, counted across epochs (Keras's integer `save_freq`).
    Batches(usize),
}

/// Saves the weights during training (Keras 3's `ModelCheckpoint` with
/// `save_weights_only = True`), as kiln's safetensors weight files (`Model::load_weights`
/// reads them back).
///
/// `filepath` is a Python format string over `epoch` (from 1), `batch` (from 1, when
/// saving every few steps) and the logged values: `"ckpt/w-{epoch:02d}-{val_loss:.4f}.safetensors"`.
/// With `save_best_only`, a file is written only when `monitor` improves on the best so far
/// (or on `initial_value_threshold`); a missing `monitor` saves anyway (Keras warns).
/// Parent directories are created; each file is written to a temporary name and renamed.
/// The best value is kept across `fit` calls, as Keras keeps it.
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    /// Where to save: a template (see above).
    pub filepath: String,
    /// The logged value `save_best_only` watches. Keras default `"val_loss"`.
    pub monitor: String,
    /// Save only improvements. Keras default false.
    pub save_best_only: bool,
    /// Whether the value should fall or rise. Keras default auto.
    pub mode: Mode,
    /// When to save. Keras default every epoch.
    pub save_freq: SaveFreq,
    /// The value to beat before the first save with `save_best_only`. Keras default none.
    pub initial_value_threshold: Option<f64>,
    /// The best value so far (Keras's `best`).
    pub best: Option<f64>,
    /// Every file written, in order.
    pub saved: Vec<String>,
    /// The direction in use: `true` when higher is better. `None` until the first epoch
    /// end resolves `mode` (Keras's `monitor_op`); set it to skip the resolution.
    pub higher_is_better: Option<bool>,
    /// Where the steps stand for [`SaveFreq::Batches`] (Keras's `_current_epoch`,
    /// `_batches_seen_since_last_saving`, `_last_batch_seen`).
    pub counter: StepCounter,
}

/// [`ModelCheckpoint`]'s count of steps between saves.
#[derive(Clone, Debug, Default)]
pub struct StepCounter {
    current_epoch: usize,
    batches_since_last_save: usize,
    last_batch_seen: Option<usize>,
}

impl ModelCheckpoint {
    /// A checkpoint to `filepath` with Keras's defaults.
    pub fn new(filepath: impl Into<String>) -> Self {
        ModelCheckpoint {
            filepath: filepath.into(),
            monitor: "val_loss".into(),
            save_best_only: false,
            mode: Mode::Auto,
            save_freq: SaveFreq::Epoch,
            initial_value_threshold: None,
            best: None,
            saved: Vec::new(),
            higher_is_better: None,
            counter: StepCounter::default(),
        }
    }

    fn higher(&mut self, training: &Training<'_>) -> Result<bool, Error> {
        if let Some(h) = self.higher_is_better {
            return Ok(h);
        }
        if self.best.is_none() {
            self.best = self.initial_value_threshold;
        }
        let h = self
            .mode
            .higher_is_better(&self.monitor, training, "ModelCheckpoint")?;
        self.higher_is_better = Some(h);
        Ok(h)
    }

    fn save(
        &mut self,
        epoch: usize,
        batch: Option<usize>,
        logs: &LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        let lookup = |name: &str| match name {
            "epoch" => Some(Value::Int(epoch as i64 + 1)),
            "batch" => batch.map(|b| Value::Int(b as i64 + 1)),
            other => logs.get(other).map(|v| Value::Float(f64::from(v))),
        };
        let path = pyformat::format(&self.filepath, &lookup).map_err(|reason| Error::Callback {
            callback: "ModelCheckpoint",
            reason: alloc::format!("cannot fill in the file path `{}`: {reason}", self.filepath),
        })?;
        if self.save_best_only {
            if let Some(current) = logs.get(&self.monitor) {
                let higher = self.higher(training)?;
                if !is_improvement(higher, 0.0, current, self.best) {
                    return Ok(());
                }
                self.best = Some(f64::from(current));
            }
        }
        write_file(&path, &training.weights_to_bytes())?;
        self.saved.push(path);
        Ok(())
    }
}

/// `bytes` to `path` through a temporary file renamed into place, parents created.
pub(crate) fn write_file(path: &str, bytes: &[u8]) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Io {
        path: path.to_string(),
        message: e.to_string(),
    };
    let target = std::path::Path::new(path);
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let temporary = std::format!("{path}.kiln-tmp");
    std::fs::write(&temporary, bytes).map_err(io)?;
    std::fs::rename(&temporary, target).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io(e)
    })
}

impl Callback for ModelCheckpoint {
    fn on_epoch_begin(
        &mut self,
        epoch: usize,
        _logs: &mut LogValues,
        _training: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.counter.current_epoch = epoch;
        Ok(())
    }

    fn on_train_batch_end(
        &mut self,
        batch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        let SaveFreq::Batches(every) = self.save_freq else {
            return Ok(());
        };
        let counter = &mut self.counter;
        let added = match counter.last_batch_seen {
            Some(last) if batch > last => batch - last,
            _ => batch + 1,
        };
        counter.batches_since_last_save += added;
        counter.last_batch_seen = Some(batch);
        if counter.batches_since_last_save >= every {
            counter.batches_since_last_save = 0;
            self.save(self.counter.current_epoch, Some(batch), logs, training)?;
        }
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        epoch: usize,
        logs: &mut LogValues,
        training: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.higher(training)?;
        if self.save_freq == SaveFreq::Epoch {
            self.save(epoch, None, logs, training)?;
        }
        Ok(())
    }
}
