//! # kiln
//!
//! Keras-style neural networks for Rust: write the layer list inside [`model!`], get shape
//! errors from the compiler at the offending layer, and run fixed-size nalgebra code with
//! Keras's numbers.
//!
//! ```
//! use kiln::Model;
//!
//! kiln::model! {
//!     /// Classifies 8x8 digit images.
//!     pub Digits = Sequential([
//!         Input(shape = (64,)),
//!         Dense(128, activation = "relu"),
//!         Dense(10, activation = "softmax"),
//!     ]);
//! }
//!
//! let model = Digits::new(42);
//! let probabilities = model.predict_slice(&[0.5; 64])?;
//! assert_eq!(probabilities.len(), 10);
//! assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
//! # Ok::<(), kiln::Error>(())
//! ```
//!
//! See [`model!`] for the DSL, [`Model`] for what every model can do, and [`tensor`] for the
//! `Input`/`Output` types of each rank.
//!
//! # Deploy
//!
//! Weights go in and out as safetensors files named by Keras 3's variable paths
//! ([`Model::save_weights`], [`Model::load_weights`], and in memory):
//!
//! ```
//! use kiln::Model;
//!
//! kiln::model! { Net = Sequential([Input(shape = (3,)), Dense(2)]); }
//!
//! let trained = Net::new(1);
//! let bytes = trained.weights_to_bytes();
//! let mut other = Net::new(2);
//! other.load_weights_from_bytes(&bytes)?;
//! assert_eq!(other.get_weight("dense/kernel")?, trained.get_weight("dense/kernel")?);
//! // A bad file is an error, and the model is unchanged.
//! assert!(other.load_weights_from_bytes(&bytes[..10]).is_err());
//! # Ok::<(), kiln::Error>(())
//! ```
//!
//! `#[weights = "..."]` (a path relative to the crate's `Cargo.toml`) bakes a file into the
//! binary, checked at compile time; `pretrained()` is a `const fn`, so a `static` can hold
//! the model, and without the `alloc` feature kiln needs no heap at all:
//!
//! ```
//! use kiln::Model;
//!
//! kiln::model! {
//!     #[weights = "tests/data/baked/net.safetensors"]
//!     Net = Sequential([
//!         Input(shape = (4,)),
//!         Dense(5, activation = "tanh"),
//!         PReLU(),
//!         Dense(2, use_bias = False),
//!     ]);
//! }
//!
//! static MODEL: Net = Net::pretrained();
//! let y = MODEL.predict(&kiln::nalgebra::SVector::<f32, 4>::new(0.5, -1.0, 2.0, 0.0));
//! assert_eq!(y.len(), 2);
//! assert_eq!(Net::WEIGHT_BYTES, 40 * 4);
//! ```
//!
//! [`Model::predict_into`] keeps every tensor in memory the caller lends (the output and a
//! scratch buffer of [`Model::SCRATCH_LEN`] values), so models whose activations are
//! megabytes run on a small thread stack:
//!
//! ```
//! use kiln::Model;
//!
//! kiln::model! {
//!     Net = Sequential([Input(shape = (4,)), Dense(8, activation = "relu"), Dense(2)]);
//! }
//!
//! let model = Net::new(0);
//! let x = <Net as Model>::Input::from_element(0.5);
//! let (mut y, mut scratch) = (Net::new_output(), Net::new_scratch());
//! model.predict_into(&x, &mut y, &mut scratch);
//! assert!((*y - model.predict(&x)).amax() < 1e-6);
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

pub use kiln_runtime::*;

#[doc = include_str!("../macros/DSL.md")]
pub use kiln_macros::model;

/// The README's Rust example, compiled and run as a doc test so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Paths the generated code names. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "alloc")]
    extern crate alloc;
    #[cfg(feature = "alloc")]
    pub use alloc::vec::Vec;
    pub use kiln_runtime::__with_alloc as with_alloc;
    #[cfg(feature = "alloc")]
    pub use kiln_runtime::initializers;
    pub use kiln_runtime::isa::dispatch;
    pub use kiln_runtime::layers;
    pub use kiln_runtime::layers::Weights;
    pub use kiln_runtime::nalgebra;
    pub use kiln_runtime::param::BakedBytes;
    #[cfg(feature = "alloc")]
    pub use kiln_runtime::training::{add_activity_gradient, add_activity_loss};
    pub use kiln_runtime::{Activation, Pass, Sample, Tensor};
    #[cfg(feature = "alloc")]
    pub use kiln_runtime::{Batch, Constraint, Gradients, Initializer, Regularizer};
}
