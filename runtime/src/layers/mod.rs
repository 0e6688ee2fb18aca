//! One kernel file per Keras layer kind. The `model!` macro's layer of the same name emits
//! calls into these.

pub mod batch_normalization;
pub mod bidirectional;
pub mod conv;
pub mod conv_transpose;
pub mod cropping;
pub mod dense;
#[cfg(feature = "alloc")]
pub mod dropout;
pub mod embedding;
pub mod global_pooling;
pub mod gru;
pub mod lambda;
pub mod layer_normalization;
pub mod lstm;
pub mod masking;
pub mod padding;
pub mod permute;
pub mod pooling;
pub mod prelu;
pub mod recurrent;
pub mod repeat_vector;
pub mod separable_conv;
pub mod simple_rnn;
pub mod softmax;
pub mod upsampling;

pub use batch_normalization::BatchNormalization;
pub use bidirectional::{Bidirectional, Merge};
pub use conv::Conv;
pub use conv_transpose::ConvTranspose;
pub use dense::Dense;
pub use embedding::Embedding;
pub use gru::Gru;
pub use layer_normalization::LayerNormalization;
pub use lstm::Lstm;
pub use prelu::PReLU;
pub use recurrent::Sequence;
pub use separable_conv::SeparableConv;
pub use simple_rnn::SimpleRnn;
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
