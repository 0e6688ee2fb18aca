//! `ELU(alpha = 1.0)`: `f(x) = x` for `x > 0`, `alpha * (exp(x) - 1)` otherwise.
//!
//! Keras puts no bound on `alpha`; kiln only asks for a finite number.
//!
//! Shape rule: output shape = input shape, any rank. Masks pass through.

use super::relu::Elementwise;
use super::{Layer, LayerInput, LayerKind};
use crate::activations::f32_lit;
use crate::args::{Bound, Signature};
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "ELU",
    signature: Signature {
        params: &["alpha"],
        required: 0,
    },
    build,
};

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let alpha = f32_lit(b.float("alpha", 1.0)? as f32);
    Ok(Box::new(Elementwise::new(
        quote!(::kiln::__private::Activation::Elu { alpha: #alpha }),
        input.shape,
    )))
}
