//! `Softmax(axis = -1)`: `f(x) = exp(x - max(x)) / sum(exp(x - max(x)))` along `axis`.
//!
//! `axis` is a Keras axis: 0 is the batch (refused: kiln normalises within each sample),
//! `1..=rank` the sample's axes, and negative values count from the end (`-1` is the last).
//! The last axis uses the row kernel of the `"softmax"` activation; any other axis the
//! strided kernel `kiln::layers::softmax_along`.
//!
//! With a Keras mask (one `bool` per position, from `Masking`), masked positions output 0
//! and take no part in the normalisation, and a line along `axis` with every position
//! masked is all zeros: Keras 3's `Softmax()(x, mask = mask[..., None])`.
//!
//! Backward pass: the softmax vector-Jacobian product along `axis`,
//! `dx = y * (dy - sum(dy * y))`, with zero gradient at masked positions. As the model's last
//! layer on the last axis it reports `softmax` as its output activation, so a
//! cross-entropy loss can hand it the gradient with respect to the logits directly.
//!
//! Shape rule: output shape = input shape, any rank. The mask passes on unchanged.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward};
use crate::args::{Bound, Signature};
use crate::ast::Value;
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Softmax",
    signature: Signature {
        params: &["axis"],
        required: 0,
    },
    build,
};

struct Softmax {
    /// The softmax axis within the per-sample shape, from 0.
    axis: usize,
    shape: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    Ok(Box::new(Softmax {
        axis: sample_axis(b, input)?,
        shape: input.shape.clone(),
    }))
}

/// The Keras `axis` argument as an axis of the per-sample shape, counted from 0.
fn sample_axis(b: &Bound, input: &LayerInput) -> Result<usize, Error> {
    let rank = input.shape.rank();
    let Some(arg) = b.get("axis") else {
        return Ok(rank - 1);
    };
    let axis = match arg.value {
        Value::Int(i) => i,
        Value::Tuple(_) | Value::List(_) => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected an integer for `axis` of `Softmax`, found {}\n  note: a softmax over several axes at once is not supported yet",
                    arg.value.describe()
                ),
            ))
        }
        _ => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected an integer for `axis` of `Softmax`, found {}",
                    arg.value.describe()
                ),
            ))
        }
    };
    let r = rank as i128;
    let within_sample = match axis {
        a if (1..=r).contains(&a) => a - 1,
        a if (-r..=-1).contains(&a) => r + a,
        a if a == 0 || a == -r - 1 => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "axis `{axis}` of `Softmax` is the batch axis; kiln normalises within each sample\n  help: {} has axes 1..={r} (or -{r}..=-1)",
                    input.phrase()
                ),
            ))
        }
        _ => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "axis `{axis}` of `Softmax` is out of range for {} of rank {r}\n  help: expected an axis in 1..={r} or -{r}..=-1 (without the batch axis)",
                    input.phrase()
                ),
            ))
        }
    };
    Ok(within_sample as usize)
}

impl Layer for Softmax {
    fn output_shape(&self) -> Shape {
        self.shape.clone()
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    /// Streaming, on the last axis: each timestep's softmax; a masked timestep is all zeros,
    /// as its line in the whole sequence.
    fn step(&self, s: &super::Step) -> Option<super::StepCode> {
        let last = self.shape.last();
        let softmax = quote!(::kiln::__private::Activation::Softmax.apply(x, #last););
        let code = match &s.mask {
            Some(keep) => quote!(if #keep { #softmax } else { x.fill(0.0); }),
            None => softmax,
        };
        (self.shape.rank() <= 2 && self.is_last_axis())
            .then(|| super::StepCode::stateless(SliceForward::InPlace(code)))
    }

    fn step_refusal(&self) -> Option<String> {
        (self.shape.rank() == 2 && !self.is_last_axis()).then(|| {
            "`Softmax` over the timesteps axis needs the whole sequence\n  help: take the softmax over the features, `axis = -1` (the default)".to_string()
        })
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        let last = self.shape.last();
        Some(SliceForward::InPlace(match &f.mask {
            None if self.is_last_axis() => {
                quote!(::kiln::__private::Activation::Softmax.apply(x, #last);)
            }
            mask => {
                let mask = match mask {
                    Some(m) => quote!(::core::option::Option::Some(&#m[..])),
                    None => quote!(::core::option::Option::None),
                };
                let (dims, axis) = (self.shape.slice_tokens(), self.axis);
                quote!(::kiln::__private::layers::softmax_along(x, #dims, #axis, #mask);)
            }
        }))
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let last = self.shape.last();
        let values = quote!(::kiln::__private::Tensor::values_mut(&mut x));
        let apply = match &f.mask {
            None if self.is_last_axis() => {
                quote!(::kiln::__private::Activation::Softmax.apply(#values, #last);)
            }
            mask => {
                let mask = match mask {
                    Some(m) => quote!(::core::option::Option::Some(&#m[..])),
                    None => quote!(::core::option::Option::None),
                };
                let (dims, axis) = (self.shape.slice_tokens(), self.axis);
                quote!(::kiln::__private::layers::softmax_along(#values, #dims, #axis, #mask);)
            }
        };
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
        let last = self.shape.last();
        let values = quote!(::kiln::__private::Tensor::values_mut(&mut dx));
        let mask = match &b.mask {
            Some(m) => quote!(::core::option::Option::Some(&#m[..])),
            None => quote!(::core::option::Option::None),
        };
        let vjp = match &b.mask {
            None if self.is_last_axis() => quote!(
                ::kiln::__private::Activation::Softmax.backward(
                    ::kiln::__private::Tensor::values(x),
                    ::kiln::__private::Tensor::values(y),
                    #values,
                    #last,
                );
            ),
            _ => {
                let (dims, axis) = (self.shape.slice_tokens(), self.axis);
                quote!(::kiln::__private::layers::softmax::softmax_along_backward(
                    ::kiln::__private::Tensor::values(y), #values, #dims, #axis, #mask,
                );)
            }
        };
        if !(b.last && self.is_last_axis()) {
            return Some(quote!({
                let mut dx = dy;
                #vjp
                dx
            }));
        }
        // Fused: `dy` is already the gradient with respect to the logits of each unmasked
        // line. A masked line's output is constant zero, so its logits get none.
        let fused_mask = match &b.mask {
            Some(m) => quote!(
                for (g, keep) in #values.chunks_exact_mut(#last).zip(#m.iter()) {
                    if !*keep {
                        g.fill(0.0);
                    }
                }
            ),
            None => quote!(),
        };
        Some(quote!({
            let mut dx = dy;
            if fused {
                #fused_mask
            } else {
                #vjp
            }
            dx
        }))
    }

    fn output_activation(&self) -> Option<TokenStream> {
        // Only the last axis is the loss's class axis, which the fused gradient assumes.
        self.is_last_axis()
            .then(|| quote!(::kiln::__private::Activation::Softmax))
    }
}

impl Softmax {
    fn is_last_axis(&self) -> bool {
        self.axis + 1 == self.shape.rank()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;

    fn axis_or_error(inv: Invocation) -> Result<usize, String> {
        let call = &inv.models[0].layers[0];
        let shape = Shape(vec![4, 5, 3]);
        let input = LayerInput {
            shape: &shape,
            source: "the model input",
        };
        let b = bind(call, &KIND.signature).map_err(|e| e.to_string())?;
        sample_axis(&b, &input).map_err(|e| e.to_string())
    }

    #[test]
    fn axes_count_like_keras() {
        assert_eq!(
            axis_or_error(syn::parse_quote!(M = Sequential([Softmax()]))),
            Ok(2)
        );
        assert_eq!(
            axis_or_error(syn::parse_quote!(M = Sequential([Softmax(1)]))),
            Ok(0)
        );
        assert_eq!(
            axis_or_error(syn::parse_quote!(M = Sequential([Softmax(axis = -2)]))),
            Ok(1)
        );
        assert_eq!(
            axis_or_error(syn::parse_quote!(M = Sequential([Softmax(-3)]))),
            Ok(0)
        );
        let e = axis_or_error(syn::parse_quote!(M = Sequential([Softmax(4)]))).unwrap_err();
        assert!(
            e.contains(
                "axis `4` of `Softmax` is out of range for the model input (4, 5, 3) of rank 3"
            ),
            "{e}"
        );
        assert!(e.contains("expected an axis in 1..=3 or -3..=-1"), "{e}");
        let e = axis_or_error(syn::parse_quote!(M = Sequential([Softmax(0)]))).unwrap_err();
        assert!(e.contains("is the batch axis"), "{e}");
        let e = axis_or_error(syn::parse_quote!(M = Sequential([Softmax(-4)]))).unwrap_err();
        assert!(e.contains("is the batch axis"), "{e}");
    }
}
