//! The [`Model`] trait every `model!` model implements, and what the trait's provided
//! methods build on: slice validation, weight lookup by Keras name, the summary table.

#[cfg(feature = "alloc")]
use crate::error::{first_non_finite, Error, ShapeDisplay};
use crate::heap::Zeroable;
#[cfg(feature = "alloc")]
use crate::losses::Loss;
#[cfg(feature = "alloc")]
use crate::optimizers::Optimizer;
use crate::tensor::Tensor;
#[cfg(feature = "alloc")]
use crate::training::{Trainable, Trainer};
#[cfg(feature = "alloc")]
use alloc::string::{String, ToString};
#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// State that travels through one forward pass.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// Training mode (Dropout drops); false in every `predict*` call.
    pub training: bool,
    /// Sum of the activity-regularisation losses added so far (already divided by the batch
    /// size, as Keras does).
    pub activity_loss: f32,
    /// Seed of the training run (`FitOptions::seed`); layers that draw random numbers in
    /// training (Dropout) derive their generator from it, the step and their own seed.
    pub seed: u64,
    /// Training step number, counted from 0 for each `Trainer`.
    pub step: u64,
    /// Tensor storage the generated training code recycles across steps.
    #[cfg(feature = "alloc")]
    pub pool: crate::pool::Pool,
    /// Which share of the step's batch this pass runs when `fit` splits batches across
    /// threads (`FitOptions::threads`), from 0. Layers that draw random numbers (Dropout)
    /// give each share its own stream; share 0's is the stream of a one-thread step.
    pub part: u64,
}

impl Pass {
    /// The pass of a `predict*` call.
    pub fn inference() -> Pass {
        Pass::default()
    }

    /// Ends a `predict` pass kept in a `ManuallyDrop`: frees the pool if a layer used it,
    /// leaving nothing else to free, so the pass needs no drop call (out of line, it costs as
    /// much as a tiny model's arithmetic).
    #[inline(always)]
    pub fn release(pass: &mut core::mem::ManuallyDrop<Pass>) {
        #[cfg(feature = "alloc")]
        if !pass.pool.is_unused() {
            drop(core::mem::take(&mut pass.pool));
        }
        let _ = pass;
    }
}

/// One layer as `summary()` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// The Keras layer name (`dense_1`, or the `name = ...` given).
    pub name: &'static str,
    /// The Keras class name (`Dense`).
    pub class: &'static str,
    /// Output shape per sample (no batch dimension).
    pub output_shape: &'static [usize],
    /// Number of values in the layer's weights, trainable or not (Keras's "Param #").
    pub params: usize,
}

/// A model declared with `kiln::model!`. Everything about its shapes is known at compile
/// time; the slice-based methods check lengths at run time and return [`Error`]s.
///
/// Models are `Sync` (their weights are plain values), so one model serves many threads,
/// and [`Model::predict_batch`] can split a large batch across threads.
///
/// The `__`-prefixed methods are what the macro generates; call the documented ones.
pub trait Model: Sized + Sync {
    /// One input sample (see [`crate::tensor`] for the type of each rank).
    type Input: Tensor + Zeroable;
    /// One output sample.
    type Output: Tensor + Zeroable;
    /// The scratch memory [`Model::predict_into`] keeps the layers' outputs in:
    /// `[f32; SCRATCH_LEN]`.
    type Scratch: Zeroable;

    /// The model's name: the Rust type's name.
    const NAME: &'static str;
    /// Input shape of one sample, as Keras's `input_shape` (no batch dimension).
    const INPUT_SHAPE: &'static [usize];
    /// Output shape of one sample.
    const OUTPUT_SHAPE: &'static [usize];
    /// Values in one input sample.
    const INPUT_LEN: usize;
    /// Values in one output sample.
    const OUTPUT_LEN: usize;
    /// Number of values in all weights, trainable or not (Keras's "Total params").
    const PARAM_COUNT: usize;
    /// Number of values the optimizer trains (Keras's "Trainable params"): all but the
    /// non-trainable weights, such as `BatchNormalization`'s moving statistics.
    const TRAINABLE_PARAM_COUNT: usize;
    /// Keras weight names in the order `model.weights` lists them (`dense/kernel`, ...).
    const WEIGHT_NAMES: &'static [&'static str];
    /// Keras shape of each weight, in the order of [`Model::WEIGHT_NAMES`].
    const WEIGHT_SHAPES: &'static [&'static [usize]];
    /// Every layer, in order, for `summary()`.
    const LAYERS: &'static [LayerInfo];
    /// `Some(input_dim)` when the first layer is `Embedding`: the slice APIs then refuse
    /// inputs that are not ids below it ([`Error::InvalidId`]).
    const INPUT_IDS: Option<usize> = None;
    /// Bytes the weights take (`PARAM_COUNT` f32 values): on the heap after
    /// [`Model::new`], in the binary's read-only data for a baked model's `pretrained()`.
    const WEIGHT_BYTES: usize = Self::PARAM_COUNT * core::mem::size_of::<f32>();
    /// An upper bound on the stack [`Model::predict`] uses, in bytes, debug or release: the
    /// generated code keeps each layer's output on the stack, so this is a few times the
    /// bytes of every layer's output plus a fixed allowance for the kernels' own frames.
    const PREDICT_STACK_BYTES: usize;
    /// Values in [`Model::Scratch`].
    const SCRATCH_LEN: usize = core::mem::size_of::<Self::Scratch>() / core::mem::size_of::<f32>();
    /// An upper bound on the stack [`Model::predict_into`] uses, in bytes: a fixed allowance
    /// for the kernels, the masks, and stack copies for the few layers without a slice form.
    const PREDICT_INTO_STACK_BYTES: usize;

    /// A model with weights initialised as Keras would (glorot_uniform kernels, zero biases
    /// unless the layer says otherwise), deterministic for a seed.
    #[cfg(feature = "alloc")]
    fn new(seed: u64) -> Self;

    /// Inference on one sample. Allocation-free: everything lives on the stack except the
    /// weights, which the model owns (or which stay in static memory when baked).
    fn predict(&self, x: &Self::Input) -> Self::Output;

    /// Inference on one sample with every tensor in memory the caller lends: the input,
    /// the output, and `scratch` for the layers' outputs in between. Nothing of the size
    /// of a tensor lives on the stack ([`Model::PREDICT_INTO_STACK_BYTES`] bounds what
    /// does), so models whose activations are megabytes run on a small thread stack, with
    /// or without a heap (a `static` scratch and output serve a `no_std` build). Computes
    /// what [`Model::predict`] computes, up to rounding (a Dense layer on several positions
    /// runs on kiln's GEMM kernels here, which sum in another order). Like `predict`, it
    /// runs a copy compiled for the CPU's best instruction set. (The `kiln` crate's docs
    /// show it.)
    fn predict_into(&self, x: &Self::Input, y: &mut Self::Output, scratch: &mut Self::Scratch);

    /// A zeroed output on the heap, for [`Model::predict_into`] (never on the stack).
    #[cfg(feature = "alloc")]
    fn new_output() -> alloc::boxed::Box<Self::Output> {
        crate::heap::zeroed()
    }

    /// Zeroed scratch on the heap, for [`Model::predict_into`] (never on the stack).
    #[cfg(feature = "alloc")]
    fn new_scratch() -> alloc::boxed::Box<Self::Scratch> {
        crate::heap::zeroed()
    }

    #[doc(hidden)]
    /// The forward pass on `xs`, already checked to hold whole samples: the outputs and,
    /// when the model carries a Keras mask to its output, the mask.
    #[cfg(feature = "alloc")]
    fn __forward_batch(&self, xs: &[f32], pass: &mut Pass) -> (Vec<f32>, Option<Vec<bool>>);
    #[doc(hidden)]
    /// The values of weight `index` of [`Model::WEIGHT_NAMES`], in Keras's layout.
    fn __weight(&self, index: usize) -> &[f32];
    #[doc(hidden)]
    /// The values of weight `index`, writable.
    #[cfg(feature = "alloc")]
    fn __weight_mut(&mut self, index: usize) -> &mut [f32];

    /// Inference on one sample given as a row-major slice of [`Model::INPUT_LEN`] values.
    /// Models whose typed `predict` would need more than 256 KiB of stack
    /// ([`Model::PREDICT_STACK_BYTES`]) run through [`Model::predict_into`] with heap
    /// buffers instead, so this works on any thread's stack.
    #[cfg(feature = "alloc")]
    fn predict_slice(&self, x: &[f32]) -> Result<Vec<f32>, Error> {
        const STACK_LIMIT: usize = 256 * 1024;
        check_input::<Self>(x, false)?;
        if Self::PREDICT_STACK_BYTES > STACK_LIMIT {
            let mut input: alloc::boxed::Box<Self::Input> = crate::heap::zeroed();
            input.values_mut().copy_from_slice(x);
            let (mut output, mut scratch) = (Self::new_output(), Self::new_scratch());
            self.predict_into(&input, &mut output, &mut scratch);
            return Ok(output.values().to_vec());
        }
        Ok(predict_on_stack(self, x))
    }

    /// Inference on many samples, contiguous and row-major (`(batch, *INPUT_SHAPE)`),
    /// computed with matrix-matrix products. Returns `(batch, *OUTPUT_SHAPE)` row-major.
    ///
    /// With `std`, a batch whose estimated work repays starting threads is split into
    /// contiguous runs of samples, one per thread, up to [`crate::threads::max_threads`]
    /// (the CPU count, `KILN_THREADS`, or [`crate::threads::set_max_threads`]); small
    /// batches stay on the calling thread. Each sample's output has the same bits on any
    /// number of threads.
    #[cfg(feature = "alloc")]
    fn predict_batch(&self, xs: &[f32]) -> Result<Vec<f32>, Error> {
        check_input::<Self>(xs, true)?;
        if xs.is_empty() {
            return Ok(Vec::new());
        }
        Ok(forward_batch(self, xs).0)
    }

    /// Like [`Model::predict_batch`] (threads included), also returning the Keras mask at
    /// the output when the model has a `Masking` layer: one `bool` per output position
    /// (`true` = kept), in row-major order of `(batch, *OUTPUT_SHAPE[..rank - 1])`.
    #[cfg(feature = "alloc")]
    fn predict_batch_with_mask(&self, xs: &[f32]) -> Result<(Vec<f32>, Option<Vec<bool>>), Error> {
        check_input::<Self>(xs, true)?;
        if xs.is_empty() {
            return Ok((Vec::new(), None));
        }
        Ok(forward_batch(self, xs))
    }

    /// The activity-regularisation loss (`ActivityRegularization` layers) of a batch, as
    /// Keras adds it to the training loss: each layer's `l1 * sum|y| + l2 * sum y²` divided by
    /// the batch size. Zero for a model without such layers. Always on the calling thread:
    /// a sum over the whole batch would round differently if added up from runs of it.
    #[cfg(feature = "alloc")]
    fn activity_loss(&self, xs: &[f32]) -> Result<f32, Error> {
        check_input::<Self>(xs, true)?;
        let mut pass = Pass::inference();
        if !xs.is_empty() {
            self.__forward_batch(xs, &mut pass);
        }
        Ok(pass.activity_loss)
    }

    /// A copy of the weight called `name` (Keras's name, e.g. `dense/kernel`), row-major in
    /// Keras's layout (a Dense kernel is `(input_dim, units)`).
    #[cfg(feature = "alloc")]
    fn get_weight(&self, name: &str) -> Result<Vec<f32>, Error> {
        let index = weight_index::<Self>(name)?;
        Ok(self.__weight(index).to_vec())
    }

    /// Replaces the weight called `name` with `values` (Keras's layout, row-major). On an
    /// error nothing is written.
    #[cfg(feature = "alloc")]
    fn set_weight(&mut self, name: &str, values: &[f32]) -> Result<(), Error> {
        let index = weight_index::<Self>(name)?;
        let shape = Self::WEIGHT_SHAPES[index];
        let expected: usize = shape.iter().product();
        if values.len() != expected {
            return Err(Error::WeightLength {
                name: name.to_string(),
                shape: ShapeDisplay::from(shape),
                expected,
                found: values.len(),
            });
        }
        if let Some((index, value)) = first_non_finite(values) {
            return Err(Error::NonFiniteWeight {
                name: name.to_string(),
                index,
                value,
            });
        }
        self.__weight_mut(index).copy_from_slice(values);
        Ok(())
    }

    /// The weights as a safetensors file: one F32 tensor per weight, named as
    /// [`Model::WEIGHT_NAMES`], in Keras's shapes and layout. A [`Trainer`]'s optimizer
    /// state is not included. (The `kiln` crate's docs show a round trip.)
    #[cfg(feature = "alloc")]
    fn weights_to_bytes(&self) -> Vec<u8> {
        crate::saving::to_bytes(self)
    }

    /// Replaces every weight with the tensors of a safetensors file (as written by
    /// [`Model::weights_to_bytes`] or `tools/keras_export.py`). F16, BF16 and F64 tensors
    /// are converted to f32. The file must hold exactly the model's weights, each with its
    /// Keras shape and only finite values; everything is checked before anything is
    /// written, so on an error the model is unchanged.
    #[cfg(feature = "alloc")]
    fn load_weights_from_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        crate::saving::load_from_bytes(self, bytes)
    }

    /// [`Model::weights_to_bytes`] written to `path` (a safetensors file). The file appears
    /// whole or not at all: the bytes go to a temporary file renamed into place.
    #[cfg(feature = "std")]
    fn save_weights(&self, path: impl AsRef<std::path::Path>) -> Result<(), Error> {
        crate::saving::save(self, path.as_ref())
    }

    /// [`Model::load_weights_from_bytes`] on the file at `path`.
    #[cfg(feature = "std")]
    fn load_weights(&mut self, path: impl AsRef<std::path::Path>) -> Result<(), Error> {
        crate::saving::load(self, path.as_ref())
    }

    /// Keras's `model.compile(optimizer, loss)`: a [`Trainer`] that owns the model and the
    /// optimizer state. Available when every layer has a backward pass ([`Trainable`]); a
    /// model with a `Lambda` lacking `backward = ...` gets a compile error here.
    #[cfg(feature = "alloc")]
    fn compile<O: Optimizer>(self, optimizer: O, loss: Loss) -> Trainer<Self, O>
    where
        Self: Trainable,
    {
        Trainer::new(self, optimizer, loss)
    }

    /// A table like Keras's `model.summary()`: each layer's name, type, output shape (with
    /// `None` for the batch) and parameter count, then the totals, and the memory `predict`
    /// needs ([`Model::WEIGHT_BYTES`], [`Model::PREDICT_STACK_BYTES`]).
    #[cfg(feature = "alloc")]
    fn summary() -> String {
        crate::summary::render(
            Self::NAME,
            Self::LAYERS,
            Self::TRAINABLE_PARAM_COUNT,
            Self::PREDICT_STACK_BYTES,
        )
    }
}

/// `predict_batch`'s forward pass on a checked, non-empty batch: split across threads when
/// that pays (`std`), else on the calling thread.
#[cfg(feature = "alloc")]
fn forward_batch<M: Model>(model: &M, xs: &[f32]) -> (Vec<f32>, Option<Vec<bool>>) {
    #[cfg(feature = "std")]
    return crate::threads::forward_batch(model, xs);
    #[cfg(not(feature = "std"))]
    return model.__forward_batch(xs, &mut Pass::inference());
}

/// The typed `predict` of a slice, in a frame of its own: a function's frame holds every
/// local it might need, so inlining this into `predict_slice` would reserve the typed
/// input and output on the stack even on the heap path taken for large models.
#[cfg(feature = "alloc")]
#[inline(never)]
fn predict_on_stack<M: Model>(model: &M, x: &[f32]) -> Vec<f32> {
    model.predict(&M::Input::from_values(x)).values().to_vec()
}

#[cfg(feature = "alloc")]
fn check_input<M: Model>(xs: &[f32], batch: bool) -> Result<(), Error> {
    let per_sample = M::INPUT_LEN;
    let shape = ShapeDisplay::from(M::INPUT_SHAPE);
    if batch {
        if per_sample == 0 || !xs.len().is_multiple_of(per_sample) {
            return Err(Error::BatchLength {
                per_sample,
                found: xs.len(),
                shape,
            });
        }
    } else if xs.len() != per_sample {
        return Err(Error::InputLength {
            expected: per_sample,
            found: xs.len(),
            shape,
        });
    }
    match first_non_finite(xs) {
        Some((index, value)) => Err(Error::NonFiniteInput { index, value }),
        None => crate::error::check_ids(M::INPUT_IDS, xs),
    }
}

#[cfg(feature = "alloc")]
pub(crate) fn weight_index<M: Model>(name: &str) -> Result<usize, Error> {
    M::WEIGHT_NAMES
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| Error::UnknownWeight {
            name: name.to_string(),
            expected: M::WEIGHT_NAMES.to_vec(),
        })
}
