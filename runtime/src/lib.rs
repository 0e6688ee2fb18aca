//! The runtime behind kiln's generated models: activations, layer kernels, initializers and
//! the [`Model`] trait. Users depend on the `kiln` facade, which re-exports all of this.
//!
//! `no_std` + `alloc` without the default `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod activations;
pub mod constraints;
mod error;
pub mod gemm;
pub mod heap;
pub mod initializers;
pub mod layers;
pub mod losses;
mod math;
pub mod metrics;
mod model;
pub mod optimizers;
pub mod pool;
pub mod regularizers;
pub mod summary;
pub mod tensor;
pub mod training;

pub use activations::Activation;
pub use constraints::Constraint;
pub use error::{Error, ShapeDisplay};
pub use initializers::Initializer;
pub use losses::Loss;
pub use metrics::{Mean, MeanMetric, Metric};
pub use model::{LayerInfo, Model, Pass};
pub use optimizers::{Adagrad, Adam, AdamW, GradientClip, Optimizer, RmsProp, Sgd};
pub use pool::Pool;
pub use regularizers::Regularizer;
pub use tensor::{Batch, Sample, Tensor};
pub use training::{FitOptions, Gradients, History, Logs, Trainable, Trainer};

/// The nalgebra version kiln's types come from, for naming `Input`/`Output` types.
pub use nalgebra;
