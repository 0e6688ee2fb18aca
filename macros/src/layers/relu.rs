//! `ReLU(max_value = None, negative_slope = 0.0, threshold = 0.0)`: Keras 3's general ReLU,
//! `f(x) = clip(x if x > threshold else 0, 0, max_value) - negative_slope * relu(threshold - x)`.
//!
//! - `x >= max_value` gives `max_value`;
//! - `threshold < x < max_value` gives `x`;
//! - `x <= threshold` gives `negative_slope * (x - threshold)` (so `x == threshold` gives 0:
//!   Keras 3's rule; Keras 2 let it through).
//!
//! All three arguments must be at least 0, as Keras's constructor demands.
//!
//! Shape rule: output shape = input shape, any rank. Masks pass through.
//!
//! Also home of what the elementwise activation layers (`LeakyReLU`, `ELU`,
//! `ThresholdedReLU`) share: [`Elementwise`] and the number getters.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward};
use crate::activations::relu_tokens;
use crate::args::{Bound, Errors, Signature};
use crate::ast::Value;
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "ReLU",
    signature: Signature {
        params: &["max_value", "negative_slope", "threshold"],
        required: 0,
    },
    build,
};

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let max_value = match b.get("max_value") {
        None => Some(None),
        Some(arg) if matches!(arg.value, Value::None) => Some(None),
        Some(_) => errors.ok(b.non_negative_float("max_value", 0.0)).map(Some),
    };
    let negative_slope = errors.ok(b.non_negative_float("negative_slope", 0.0));
    let threshold = errors.ok(b.non_negative_float("threshold", 0.0));
    errors.into_result()?;
    let (Some(max_value), Some(negative_slope), Some(threshold)) =
        (max_value, negative_slope, threshold)
    else {
        return Err(Error::new_spanned(&b.call.call, "invalid `ReLU` arguments"));
    };
    let tokens = relu_tokens(
        negative_slope as f32,
        max_value.map(|m| m as f32),
        threshold as f32,
    );
    Ok(Box::new(Elementwise::new(tokens, input.shape)))
}

/// A layer applying one elementwise `kiln::Activation` constant; output shape = input shape,
/// masks pass through (Keras's `supports_masking = True`). Its backward pass multiplies the
/// gradient by the activation's derivative at the input (`Activation::backward`).
pub(super) struct Elementwise {
    activation: TokenStream,
    shape: Shape,
}

impl Elementwise {
    /// `activation` is the runtime `Activation` constant's expression.
    pub(super) fn new(activation: TokenStream, shape: &Shape) -> Elementwise {
        Elementwise {
            activation,
            shape: shape.clone(),
        }
    }
}

impl Layer for Elementwise {
    fn output_shape(&self) -> Shape {
        self.shape.clone()
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        let (activation, last) = (&self.activation, self.shape.last());
        Some(SliceForward::InPlace(quote!(#activation.apply(x, #last);)))
    }

    fn step(&self, _s: &super::Step) -> Option<super::StepCode> {
        let (activation, last) = (&self.activation, self.shape.last());
        Some(super::StepCode::stateless(SliceForward::InPlace(
            quote!(#activation.apply(x, #last);),
        )))
    }

    fn forward(&self, _f: &Forward) -> TokenStream {
        let (activation, last) = (&self.activation, self.shape.last());
        quote!({
            let mut x = x;
            #activation.apply(::kiln::__private::Tensor::values_mut(&mut x), #last);
            x
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        if !b.need_input_grad {
            return Some(quote!({
                pass.pool.give(dy);
            }));
        }
        let (activation, last) = (&self.activation, self.shape.last());
        Some(quote!({
            let mut dx = dy;
            #activation.backward(
                ::kiln::__private::Tensor::values(x),
                ::kiln::__private::Tensor::values(y),
                ::kiln::__private::Tensor::values_mut(&mut dx),
                #last,
            );
            dx
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;

    fn errors(inv: Invocation) -> String {
        let call = &inv.models[0].layers[0];
        let shape = Shape(vec![4]);
        let input = LayerInput {
            shape: &shape,
            source: "the model input",
        };
        match bind(call, &KIND.signature).and_then(|b| build(&b, &input)) {
            Ok(_) => String::new(),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }

    #[test]
    fn keras_argument_rules() {
        assert_eq!(
            errors(syn::parse_quote!(M = Sequential([ReLU(6, 0.1, 0.5)]))),
            ""
        );
        assert_eq!(
            errors(syn::parse_quote!(M = Sequential([ReLU(max_value = None)]))),
            ""
        );
        let e = errors(syn::parse_quote!(
            M = Sequential([ReLU(max_value = -1, negative_slope = -0.5)])
        ));
        assert!(
            e.contains("`max_value` of `ReLU` must be at least 0, found `-1`"),
            "{e}"
        );
        assert!(
            e.contains("`negative_slope` of `ReLU` must be at least 0, found `-0.5`"),
            "{e}"
        );
        let e = errors(syn::parse_quote!(M = Sequential([ReLU(threshold = 1e300)])));
        assert!(e.contains("must be a finite `f32`"), "{e}");
    }
}
