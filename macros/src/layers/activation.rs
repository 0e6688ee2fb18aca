//! `Activation(activation)`: applies an activation function by name (or call form).
//!
//! Shape rule: output shape = input shape.

use super::{Forward, Layer, LayerInput, LayerKind, MaskRule};
use crate::activations::{self, Resolved};
use crate::args::{Bound, Signature};
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Activation",
    signature: Signature {
        params: &["activation"],
        required: 1,
    },
    build,
};

struct Activation {
    activation: Resolved,
    shape: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let arg = b.get("activation").ok_or_else(|| {
        Error::new_spanned(
            &b.call.call,
            "`Activation` is missing its required argument `activation`",
        )
    })?;
    Ok(Box::new(Activation {
        activation: activations::resolve(arg)?,
        shape: input.shape.clone(),
    }))
}

impl Layer for Activation {
    fn output_shape(&self) -> Shape {
        self.shape.clone()
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn forward(&self, _f: &Forward) -> TokenStream {
        let apply = self.activation.apply(&quote!(x), self.shape.last());
        quote!({
            let mut x = x;
            #apply
            x
        })
    }
}
