//! The runtime behind kiln's generated models: activations, layer kernels, initializers and
//! the [`Model`] trait. Users depend on the `kiln` facade, which re-exports all of this.
//!
//! `no_std` + `alloc` without the default `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod activations;
mod error;
pub mod heap;
pub mod initializers;
pub mod layers;
mod math;
mod model;
pub mod summary;
pub mod tensor;

pub use activations::Activation;
pub use error::{Error, ShapeDisplay};
pub use initializers::Initializer;
pub use model::{LayerInfo, Model, Pass};
pub use tensor::{Batch, Sample, Tensor};

/// The nalgebra version kiln's types come from, for naming `Input`/`Output` types.
pub use nalgebra;
