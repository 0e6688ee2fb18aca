//! One kernel file per Keras layer kind. The `model!` macro's layer of the same name emits
//! calls into these.

pub mod dense;
#[cfg(feature = "alloc")]
pub mod dropout;
pub mod lambda;
pub mod masking;
pub mod permute;
pub mod prelu;
pub mod repeat_vector;
pub mod softmax;

pub use dense::Dense;
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
