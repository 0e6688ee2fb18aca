//! `Activation(activation)`: applies an activation function by name (or call form).
//!
//! Shape rule: output shape = input shape.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward};
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

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        let apply = self.activation.apply_slice(&quote!(x), self.shape.last());
        Some(SliceForward::InPlace(apply))
    }

    fn step(&self, _s: &super::Step) -> Option<super::StepCode> {
        let apply = self.activation.apply_slice(&quote!(x), self.shape.last());
        Some(super::StepCode::stateless(SliceForward::InPlace(apply)))
    }

    fn forward(&self, _f: &Forward) -> TokenStream {
        let apply = self.activation.apply(&quote!(x), self.shape.last());
        quote!({
            let mut x = x;
            #apply
            x
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        if !b.need_input_grad {
            return Some(quote!({
                pass.pool.give(dy);
            }));
        }
        if self.activation.name == "linear" {
            return Some(quote!(dy));
        }
        let act = &self.activation.tokens;
        let last = self.shape.last();
        let guard = if b.last { quote!(if !fused) } else { quote!() };
        Some(quote!({
            let mut dz = dy;
            #guard {
                #act.backward(
                    ::kiln::__private::Tensor::values(x),
                    ::kiln::__private::Tensor::values(y),
                    ::kiln::__private::Tensor::values_mut(&mut dz),
                    #last,
                );
            }
            dz
        }))
    }

    fn output_activation(&self) -> Option<TokenStream> {
        Some(self.activation.tokens.clone())
    }
}
