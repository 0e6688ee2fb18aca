//! `ActivityRegularization(l1 = 0.0, l2 = 0.0)`: the identity, adding
//! `(l1 * Σ|x| + l2 * Σx²) / batch_size` of its input batch to the loss (Keras 3 divides an
//! activity regularizer's penalty by the batch size).
//!
//! The penalty is added to `Pass::activity_loss` in every batch forward pass, so
//! `Model::activity_loss`, `Trainer::evaluate` and the loss `train_on_batch` reports include
//! it; one-sample `predict` skips it. The backward pass adds its gradient,
//! `(l1 * sign(x) + 2 * l2 * x) / batch_size`, to the incoming gradient.
//!
//! Shape rule: output shape = input shape, any rank. `l1` and `l2` must be at least 0. No
//! weights; the mask passes on.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward};
use crate::args::{Bound, Errors, Signature};
use crate::shape::{Mode, Shape};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "ActivityRegularization",
    signature: Signature {
        params: &["l1", "l2"],
        required: 0,
    },
    build,
};

struct ActivityRegularization {
    l1: f32,
    l2: f32,
    shape: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let l1 = errors.ok(b.non_negative_float("l1", 0.0));
    let l2 = errors.ok(b.non_negative_float("l2", 0.0));
    errors.into_result()?;
    let (Some(l1), Some(l2)) = (l1, l2) else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `ActivityRegularization` arguments",
        ));
    };
    Ok(Box::new(ActivityRegularization {
        l1: l1 as f32,
        l2: l2 as f32,
        shape: input.shape.clone(),
    }))
}

impl ActivityRegularization {
    fn regularizer(&self) -> TokenStream {
        let (l1, l2) = (self.l1, self.l2);
        quote!(::kiln::__private::Regularizer::L1L2 { l1: #l1, l2: #l2 })
    }

    /// Statements adding the penalty of the batch `x` to `pass`.
    fn add_loss(&self) -> TokenStream {
        let (reg, per_sample) = (self.regularizer(), self.shape.len());
        quote!(::kiln::__private::add_activity_loss(
            pass,
            &#reg,
            ::kiln::__private::Tensor::values(&x),
            #per_sample,
        );)
    }
}

impl Layer for ActivityRegularization {
    fn output_shape(&self) -> Shape {
        self.shape.clone()
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        Some(SliceForward::Same)
    }

    fn step(&self, _s: &super::Step) -> Option<super::StepCode> {
        Some(super::StepCode::stateless(SliceForward::Same))
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        match f.mode {
            Mode::Sample => quote!(x),
            Mode::Batch => {
                let add = self.add_loss();
                quote!({
                    #add
                    x
                })
            }
        }
    }

    fn forward_train(&self, _f: &Forward) -> TokenStream {
        let add = self.add_loss();
        quote!({
            #add
            (x, ())
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        if !b.need_input_grad {
            return Some(quote!({
                pass.pool.give(dy);
            }));
        }
        let (reg, per_sample) = (self.regularizer(), self.shape.len());
        Some(quote!({
            let mut dx = dy;
            ::kiln::__private::add_activity_gradient(
                &#reg,
                ::kiln::__private::Tensor::values(x),
                ::kiln::__private::Tensor::values_mut(&mut dx),
                #per_sample,
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

    fn factors(inv: Invocation) -> Result<(f32, f32), String> {
        let b = bind(&inv.models[0].layers[0], &KIND.signature).map_err(|e| e.to_string())?;
        let shape = Shape(vec![4]);
        let input = LayerInput {
            shape: &shape,
            source: "the model input",
        };
        let error = |e: Error| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let layer = build(&b, &input).map_err(error)?;
        assert_eq!(layer.output_shape(), shape);
        let l = ActivityRegularization {
            l1: b.non_negative_float("l1", 0.0).map_err(error)? as f32,
            l2: b.non_negative_float("l2", 0.0).map_err(error)? as f32,
            shape,
        };
        Ok((l.l1, l.l2))
    }

    #[test]
    fn factors_default_to_zero_and_must_not_be_negative() {
        assert_eq!(
            factors(syn::parse_quote!(
                M = Sequential([ActivityRegularization()])
            )),
            Ok((0.0, 0.0))
        );
        assert_eq!(
            factors(syn::parse_quote!(
                M = Sequential([ActivityRegularization(0.1, l2 = 2)])
            )),
            Ok((0.1, 2.0))
        );
        let e = factors(syn::parse_quote!(
            M = Sequential([ActivityRegularization(l1 = -0.5, l2 = -1)])
        ))
        .unwrap_err();
        assert!(
            e.contains("`l1` of `ActivityRegularization` must be at least 0, found `-0.5`"),
            "{e}"
        );
        assert!(
            e.contains("`l2` of `ActivityRegularization` must be at least 0, found `-1`"),
            "{e}"
        );
    }
}
