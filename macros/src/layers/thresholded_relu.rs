//! `ThresholdedReLU(theta = 1.0)`: `f(x) = x` for `x > theta`, 0 otherwise.
//!
//! This is Keras 2's layer: Keras 3 removed it from its public layers (there,
//! `ReLU(threshold = theta)` computes the same function). kiln keeps it so Keras 2 models
//! port as written. `theta` must be at least 0, as Keras 2's constructor demanded.
//!
//! Shape rule: output shape = input shape, any rank. Masks pass through.

use super::relu::Elementwise;
use super::{Layer, LayerInput, LayerKind};
use crate::activations::f32_lit;
use crate::args::{Bound, Signature};
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "ThresholdedReLU",
    signature: Signature {
        params: &["theta"],
        required: 0,
    },
    build,
};

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let theta = f32_lit(b.non_negative_float("theta", 1.0)? as f32);
    Ok(Box::new(Elementwise::new(
        quote!(::kiln::__private::Activation::ThresholdedRelu { theta: #theta }),
        input.shape,
    )))
}
