//! `Masking(mask_value = 0.0)`: masks every position whose features all equal `mask_value`.
//!
//! A position is one index of all axes but the last (a timestep of a `(t, f)` sequence): one
//! column of the tensor's matrix. Keras 3's `Masking` computes
//! `keep = any(x != mask_value, axis = -1)`, outputs `where(keep, x, 0)` (masked positions
//! become 0) and attaches `keep` to its output as the Keras mask, which the layers after it
//! pass on (`Dense`, activations, `Dropout`, ...) or use (`Softmax`). A layer that cannot take
//! a mask after `Masking` is a compile error (see `check.rs`).
//!
//! Generated code returns `(output, mask)`: the mask is a `[bool; positions]` for one sample
//! and a `Vec<bool>` over every position of every sample for a batch. In training the batch
//! mask and the layer's copy of it for the backward pass come from the step's pool, and go
//! back to it when the step ends. The backward pass passes no gradient to masked positions
//! (the derivative of `where`).
//!
//! Shape rule: output shape = input shape, any rank. No weights.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward};
use crate::args::{Bound, Signature};
use crate::shape::{Mode, Shape};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Masking",
    signature: Signature {
        params: &["mask_value"],
        required: 0,
    },
    build,
};

struct Masking {
    mask_value: f32,
    shape: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    Ok(Box::new(Masking {
        mask_value: b.float("mask_value", 0.0)? as f32,
        shape: input.shape.clone(),
    }))
}

impl Layer for Masking {
    fn output_shape(&self) -> Shape {
        self.shape.clone()
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Produce
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        let (features, value, positions) =
            (self.shape.last(), self.mask_value, self.shape.positions());
        Some(SliceForward::InPlace(quote!({
            let mut mask = [false; #positions];
            ::kiln::__private::layers::masking::masking_into(x, #features, #value, &mut mask);
            mask
        })))
    }

    fn step(&self, _s: &super::Step) -> Option<super::StepCode> {
        let (features, value) = (self.shape.last(), self.mask_value);
        (self.shape.rank() <= 2).then(|| {
            super::StepCode::stateless(SliceForward::InPlace(quote!({
                let mut keep = [false; 1];
                ::kiln::__private::layers::masking::masking_into(x, #features, #value, &mut keep);
                keep[0]
            })))
        })
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let (features, value) = (self.shape.last(), self.mask_value);
        match f.mode {
            Mode::Sample => {
                let positions = self.shape.positions();
                quote!({
                    let mut x = x;
                    let mut mask = [false; #positions];
                    ::kiln::__private::layers::masking::masking_into(
                        ::kiln::__private::Tensor::values_mut(&mut x),
                        #features,
                        #value,
                        &mut mask,
                    );
                    (x, mask)
                })
            }
            Mode::Batch => quote!({
                let mut x = x;
                let mask = ::kiln::__private::layers::masking::masking(
                    ::kiln::__private::Tensor::values_mut(&mut x),
                    #features,
                    #value,
                );
                (x, mask)
            }),
        }
    }

    fn forward_train(&self, _f: &Forward) -> TokenStream {
        let (features, value) = (self.shape.last(), self.mask_value);
        // The cache is the layer's own mask: by the time the backward pass runs, `mask` names
        // the mask of the last `Masking` layer of the model. Both come from the step's pool;
        // the backward pass returns the cache, the end of the step the mask.
        quote!({
            let mut x = x;
            let mask = ::kiln::__private::layers::masking::masking_pooled(
                &mut pass.pool,
                ::kiln::__private::Tensor::values_mut(&mut x),
                #features,
                #value,
            );
            let cache = pass.pool.copy_of_mask(&mask);
            ((x, mask), cache)
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        if !b.need_input_grad {
            return Some(quote!({
                pass.pool.give(dy);
                pass.pool.give_mask(cache);
            }));
        }
        let features = self.shape.last();
        Some(quote!({
            let mut dx = dy;
            ::kiln::__private::layers::masking::mask_gradient(
                ::kiln::__private::Tensor::values_mut(&mut dx),
                #features,
                &cache,
            );
            pass.pool.give_mask(cache);
            dx
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;

    fn build_from(inv: Invocation) -> Result<Box<dyn Layer>, String> {
        let b = bind(&inv.models[0].layers[0], &KIND.signature).map_err(|e| e.to_string())?;
        let shape = Shape(vec![5, 3]);
        let input = LayerInput {
            shape: &shape,
            source: "the model input",
        };
        build(&b, &input).map_err(|e| e.to_string())
    }

    #[test]
    fn takes_a_number_and_produces_a_mask() {
        let layer = build_from(syn::parse_quote!(
            M = Sequential([Masking(mask_value = -1)])
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(layer.mask_rule(), MaskRule::Produce);
        assert_eq!(layer.output_shape(), Shape(vec![5, 3]));
        let e = build_from(syn::parse_quote!(M = Sequential([Masking("0")])))
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("expected a number for `mask_value` of `Masking`, found the string"),
            "{e}"
        );
    }
}
