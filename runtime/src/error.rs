//! `Error`: every fallible runtime call (slice predictions, weight access, weight files)
//! returns it.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What went wrong in a runtime call on a model. Each variant carries enough to fix the call
/// without reading kiln's source: the expected names, lengths or shapes next to what was given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A slice holding one sample had the wrong number of values.
    #[error("expected {expected} input values (one sample of shape {shape}), found {found}")]
    InputLength {
        /// Values one sample needs.
        expected: usize,
        /// Values given.
        found: usize,
        /// The model's per-sample input shape, as Keras prints it.
        shape: ShapeDisplay,
    },
    /// A batch slice's length was not a multiple of one sample's length.
    #[error("a batch of samples of shape {shape} needs a multiple of {per_sample} values, found {found}")]
    BatchLength {
        /// Values per sample.
        per_sample: usize,
        /// Values given.
        found: usize,
        /// The model's per-sample input shape.
        shape: ShapeDisplay,
    },
    /// A sequence slice (`predict_sequence`, `predict_chunk`) was not whole timesteps.
    #[error("a sequence of timesteps of shape {shape} needs a positive multiple of {per_step} values, found {found}")]
    SequenceLength {
        /// Values per timestep (the input's last axis).
        per_step: usize,
        /// Values given.
        found: usize,
        /// One timestep's shape.
        shape: ShapeDisplay,
    },
    /// The input of `predict_stateful` (a model with `stateful = True` layers) was not one
    /// sequence per sample of its fixed batch size, all of the same length.
    #[error(
        "a stateful model with batch size {batch_size} takes {batch_size} sequences of {}timesteps of shape {shape} ({}), found {found} values",
        match .timesteps { Some(t) => alloc::format!("{t} "), None => String::new() },
        match .timesteps {
            Some(t) => alloc::format!("{} values", .batch_size * t * .per_step),
            None => alloc::format!("an equal positive number each: a positive multiple of {} values", .batch_size * .per_step),
        }
    )]
    StatefulBatchLength {
        /// The batch size the model input fixes (`Input(batch_shape = (B, ...))`).
        batch_size: usize,
        /// The timesteps the model input fixes (`None` for `(None, features)`).
        timesteps: Option<usize>,
        /// Values per timestep.
        per_step: usize,
        /// Values given.
        found: usize,
        /// One timestep's shape.
        shape: ShapeDisplay,
    },
    /// An input value was NaN or infinite.
    #[error("input value at index {index} is {value}, expected a finite number")]
    NonFiniteInput {
        /// Position in the given slice.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// An input of a model whose first layer is `Embedding` that is not a whole number in
    /// `0..input_dim` (the slice APIs check ids; the typed `predict` follows Keras on JAX).
    #[error(
        "input value at index {index} is {value}, expected an id: a whole number in 0..{input_dim}"
    )]
    InvalidId {
        /// Position in the given slice.
        index: usize,
        /// The offending value.
        value: f32,
        /// The `Embedding`'s `input_dim`.
        input_dim: usize,
    },
    /// A weight name that the model does not have.
    #[error("no weight named `{name}`; the model's weights are: {}", .expected.join(", "))]
    UnknownWeight {
        /// The name asked for.
        name: String,
        /// Every weight name the model has, in order.
        expected: Vec<&'static str>,
    },
    /// `set_weight` got the wrong number of values.
    #[error("weight `{name}` has shape {shape} and takes {expected} values, found {found}")]
    WeightLength {
        /// The weight's name.
        name: String,
        /// Its Keras shape.
        shape: ShapeDisplay,
        /// Values it takes.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// Training labels did not match the inputs' sample count.
    #[error("expected {expected} label values ({samples} samples x {per_sample}), found {found}")]
    LabelLength {
        /// Values expected.
        expected: usize,
        /// Values given.
        found: usize,
        /// Samples in the inputs.
        samples: usize,
        /// Label values per sample.
        per_sample: usize,
    },
    /// A training option out of range.
    #[error("`{name}` {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `set_weight` got a NaN or infinite value; nothing was written.
    #[error("weight `{name}` value at index {index} is {value}, expected a finite number; nothing was written")]
    NonFiniteWeight {
        /// The weight's name.
        name: String,
        /// Position in the given slice.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// A weight file could not be read as safetensors (truncated, corrupt, not one at all).
    #[error("not a valid safetensors weight file: {reason}; nothing was loaded")]
    WeightFile {
        /// What the safetensors reader found wrong.
        reason: String,
    },
    /// A weight file lacks one of the model's weights.
    #[error("the weight file has no tensor `{name}`; the model's weights are: {}; the file holds: {}; nothing was loaded", .expected.join(", "), .found.join(", "))]
    MissingWeight {
        /// The missing weight's name.
        name: String,
        /// Every weight name the model has, in order.
        expected: Vec<&'static str>,
        /// The tensor names the file holds, sorted.
        found: Vec<String>,
    },
    /// A weight file holds a tensor the model has no weight for.
    #[error("the weight file holds a tensor `{name}` that the model has no weight for; the model's weights are: {}; nothing was loaded", .expected.join(", "))]
    UnexpectedWeight {
        /// The tensor's name.
        name: String,
        /// Every weight name the model has, in order.
        expected: Vec<&'static str>,
    },
    /// A weight file's tensor has a shape other than the weight's.
    #[error("weight `{name}` has shape {expected}, but the file's tensor has shape {found}; nothing was loaded")]
    WeightShape {
        /// The weight's name.
        name: String,
        /// The weight's Keras shape.
        expected: ShapeDisplay,
        /// The tensor's shape in the file.
        found: ShapeDisplay,
    },
    /// A weight file's tensor has a dtype kiln does not convert (F32, F16, BF16 and F64 are
    /// read).
    #[error("weight `{name}` is stored as {dtype}; kiln reads F32, F16, BF16 and F64; nothing was loaded")]
    WeightDtype {
        /// The weight's name.
        name: String,
        /// The tensor's dtype, as safetensors names it.
        dtype: String,
    },
    /// `fit` was given no samples (Keras: "Expected input data to be non-empty").
    #[error("`fit` needs at least one training sample, found none in {what}")]
    EmptyData {
        /// Where no sample was found: `x`, the data after the validation split, a dataset.
        what: &'static str,
    },
    /// A label of a sparse categorical cross-entropy is not a class id in `0..classes`.
    #[error("label value at index {index} is {value}, expected a class id: a whole number in 0..{classes}")]
    LabelOutOfRange {
        /// Position in the given labels.
        index: usize,
        /// The offending label.
        value: f32,
        /// Classes of the model's output (its last axis).
        classes: usize,
    },
    /// `sample_weight` (or the weights a dataset gave with a batch) did not hold one
    /// finite, non-negative value per sample.
    #[error("expected {expected} sample weights (one per sample), found {found}")]
    SampleWeightLength {
        /// One per sample.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// A loss, gradient, weight or value of the optimizer state became NaN or infinite
    /// during `fit` (kiln's default, Keras's `TerminateOnNaN(raise_error = True)` applied to
    /// every step's values): training stopped at that step (see `weights_kept`).
    #[error("training diverged in epoch {} at step {}: {quantity} is {value}; {}", .epoch + 1, .step + 1, if *.weights_kept { "the weights and the optimizer state are those from before this step" } else { "the weights or the optimizer state hold values from after it" })]
    Diverged {
        /// The epoch (from 0, as Keras's callbacks count).
        epoch: usize,
        /// The step within the epoch (from 0).
        step: usize,
        /// What became non-finite: `the loss`, `the gradient of dense/kernel`, `weight
        /// dense/kernel` (the update overflowed it), `the optimizer state of dense/kernel`
        /// (Adam's `v`, an accumulator, a moving average of the weight).
        quantity: String,
        /// The first non-finite value.
        value: f32,
        /// Whether the weights and the optimizer state are those from before the bad
        /// step: true when the step was refused (a non-finite loss or gradient, before the
        /// update; an update that overflowed, undone), false only when a weight was found
        /// non-finite at the end of an epoch (one a callback wrote) or for an optimizer
        /// from outside kiln that cannot show its state (`Optimizer::visit_state`), whose
        /// weights are put back but not its state.
        weights_kept: bool,
    },
    /// A callback's `monitor` names a value that `mode = "auto"` cannot orient (Keras raises
    /// the same `ValueError`), or a file-name template field that is not logged.
    #[error("{callback}: {reason}")]
    Callback {
        /// The callback (`EarlyStopping`, `ModelCheckpoint`, ...).
        callback: &'static str,
        /// What is wrong, with the names involved.
        reason: String,
    },
    /// A [`crate::training::Dataset`] failed to give its next batch.
    #[error("the dataset failed: {message}")]
    Dataset {
        /// The dataset's own message.
        message: String,
    },
    /// A trainer checkpoint (`Trainer::save`) does not fit this trainer.
    #[error("the trainer checkpoint {reason}; nothing was loaded")]
    Checkpoint {
        /// What does not fit.
        reason: String,
    },
    /// Reading or writing a weight file failed.
    #[error("cannot access `{path}`: {message}")]
    Io {
        /// The file's path.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A training `History` could not be drawn (`History::to_svg`, the `plot`
    /// feature): it holds no epoch, or the plotting library failed.
    #[error("cannot plot the history: {reason}")]
    Plot {
        /// What is missing or what failed.
        reason: String,
    },
}

/// A shape printed the way Keras prints one: `(3, 4)`, `(64,)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeDisplay(pub Vec<usize>);

impl From<&[usize]> for ShapeDisplay {
    fn from(dims: &[usize]) -> Self {
        ShapeDisplay(dims.to_vec())
    }
}

impl fmt::Display for ShapeDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_shape(f, None, &self.0)
    }
}

/// Writes `dims` as a Python tuple, optionally led by a batch entry such as `None`.
pub(crate) fn write_shape(
    f: &mut impl fmt::Write,
    batch: Option<&str>,
    dims: &[usize],
) -> fmt::Result {
    f.write_str("(")?;
    let mut first = true;
    if let Some(batch) = batch {
        f.write_str(batch)?;
        first = false;
    }
    for d in dims {
        if !first {
            f.write_str(", ")?;
        }
        write!(f, "{d}")?;
        first = false;
    }
    if dims.len() + usize::from(batch.is_some()) == 1 {
        f.write_str(",")?;
    }
    f.write_str(")")
}

/// The first non-finite value of `values`, as `(index, value)`.
/// [`Error::InvalidId`] for the first value of `xs` that is not an id below `input_dim`,
/// when the model takes ids (`Model::INPUT_IDS`).
pub(crate) fn check_ids(input_dim: Option<usize>, xs: &[f32]) -> Result<(), Error> {
    let Some(input_dim) = input_dim else {
        return Ok(());
    };
    match crate::layers::Embedding::check_ids(input_dim, xs) {
        Ok(()) => Ok(()),
        Err((index, value)) => Err(Error::InvalidId {
            index,
            value,
            input_dim,
        }),
    }
}

pub(crate) fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    // A branch-free test per chunk vectorises; `position` over the whole slice does not and
    // took 50 µs of a 700 µs `predict_batch` of 256 MNIST samples (see BENCHMARKS.md). Only
    // a chunk holding a bad value is searched element by element.
    const CHUNK: usize = 64;
    values.chunks(CHUNK).enumerate().find_map(|(c, chunk)| {
        if chunk.iter().fold(true, |ok, v| ok & v.is_finite()) {
            return None;
        }
        let i = chunk.iter().position(|v| !v.is_finite())?;
        Some((c * CHUNK + i, chunk[i]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn shapes_print_like_python_tuples() {
        assert_eq!(ShapeDisplay(vec![64]).to_string(), "(64,)");
        assert_eq!(ShapeDisplay(vec![3, 4]).to_string(), "(3, 4)");
        let mut s = String::new();
        write_shape(&mut s, Some("None"), &[10]).unwrap();
        assert_eq!(s, "(None, 10)");
    }

    #[test]
    fn unknown_weight_lists_the_names() {
        let e = Error::UnknownWeight {
            name: "x".into(),
            expected: vec!["dense/kernel", "dense/bias"],
        };
        assert_eq!(
            e.to_string(),
            "no weight named `x`; the model's weights are: dense/kernel, dense/bias"
        );
    }
}
