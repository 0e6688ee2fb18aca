//! One kernel file per Keras layer kind. The `model!` macro's layer of the same name emits
//! calls into these.

pub mod batch_normalization;
pub mod conv;
pub mod cropping;
pub mod dense;
#[cfg(feature = "alloc")]
pub mod dropout;
pub mod global_pooling;
pub mod lambda;
pub mod layer_normalization;
pub mod masking;
pub mod padding;
pub mod permute;
pub mod pooling;
pub mod prelu;
pub mod repeat_vector;
pub mod softmax;
pub mod upsampling;

pub use batch_normalization::BatchNormalization;
pub use conv::Conv;
pub use dense::Dense;
pub use layer_normalization::LayerNormalization;
pub use prelu::PReLU;
pub use softmax::softmax_along;

/// Access to a layer's weights by their index in Keras's order (`kernel` = 0, `bias` = 1),
/// as Keras's layout: row-major in the Keras shape.
pub trait Weights {
    /// Weight `index`'s values.
    fn weight(&self, index: usize) -> &[f32];
    /// Weight `index`'s values, writable (copied to the heap first if baked).
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32];
}
