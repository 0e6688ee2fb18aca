//! The runtime behind kiln's generated models: activations, layer kernels, initializers and
//! the [`Model`] trait. Users depend on the `kiln` facade, which re-exports all of this.
//!
//! Features: `std` (default) = `alloc` + file paths, std's math and the progress bar;
//! `alloc` = everything that needs a heap (`Model::new`, slices, weight files, training).
//! Without either, the runtime is `no_std` and links no allocator: typed `predict` on models
//! whose weights are baked into the binary.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
// Every `unsafe` block says why it is sound (`// SAFETY: ...`).
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod activations;
#[cfg(feature = "alloc")]
pub mod constraints;
#[cfg(feature = "alloc")]
mod error;
pub mod gemm;
pub mod heap;
#[cfg(feature = "alloc")]
pub mod initializers;
pub mod isa;
pub mod layers;
#[cfg(feature = "alloc")]
pub mod losses;
mod math;
#[cfg(feature = "alloc")]
pub mod metrics;
mod model;
#[cfg(feature = "alloc")]
pub mod optimizers;
pub mod param;
#[cfg(feature = "alloc")]
pub mod pool;
#[cfg(feature = "alloc")]
pub mod regularizers;
#[cfg(feature = "alloc")]
pub mod saving;
#[cfg(feature = "alloc")]
pub mod schedules;
pub mod simd_math;
pub mod streaming;
#[cfg(feature = "alloc")]
pub mod summary;
pub mod tensor;
#[cfg(feature = "std")]
pub mod threads;
#[cfg(feature = "alloc")]
pub mod training;

pub use activations::Activation;
#[cfg(feature = "alloc")]
pub use constraints::Constraint;
#[cfg(feature = "alloc")]
pub use error::{Error, ShapeDisplay};
#[cfg(feature = "alloc")]
pub use initializers::Initializer;
#[cfg(feature = "alloc")]
pub use losses::Loss;
#[cfg(feature = "alloc")]
pub use metrics::{AucCurve, AucSummation, F1Average, Mean, MeanMetric, Metric, MetricState};
pub use model::{LayerInfo, Model, Pass};
#[cfg(feature = "alloc")]
pub use optimizers::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Ema, Ftrl, GradientClip, Lamb, Lion, Nadam, Optimizer,
    RmsProp, Sgd,
};
#[cfg(feature = "alloc")]
pub use pool::Pool;
#[cfg(feature = "alloc")]
pub use regularizers::Regularizer;
pub use streaming::{Reset, StreamState, Streaming};
#[cfg(feature = "alloc")]
pub use tensor::Batch;
pub use tensor::{Sample, Tensor};
#[cfg(feature = "alloc")]
pub use training::callbacks::{self, Callback};
#[cfg(feature = "alloc")]
pub use training::{
    batches, Batches, Dataset, FitOptions, Gradients, History, Logs, Trainable, Trainer,
    WeightUpdate,
};

/// Emits the items inside only when kiln has a heap (the `alloc` feature): the generated
/// code wraps its heap-using methods in it, so one expansion serves both builds.
#[doc(hidden)]
#[cfg(feature = "alloc")]
#[macro_export]
macro_rules! __with_alloc {
    ($($item:tt)*) => { $($item)* };
}

/// Emits the items inside only when kiln has a heap (the `alloc` feature).
#[doc(hidden)]
#[cfg(not(feature = "alloc"))]
#[macro_export]
macro_rules! __with_alloc {
    ($($item:tt)*) => {};
}

/// The nalgebra version kiln's types come from, for naming `Input`/`Output` types.
pub use nalgebra;
