//! `RepeatVector(n)`: stacks `n` copies of each sample's vector.
//!
//! Shape rule: `(features,)` -> `(n, features)`; the input must have rank 1 and `n` must be
//! at least 1. No weights; refuses a mask.
//!
//! The generated code calls the runtime kernel `kiln_runtime::layers::repeat_vector`, and
//! in training `repeat_vector_backward` (the sum of the copies' gradients).

use super::{Backward, Forward, Layer, LayerInput, LayerKind, SliceForward};
use crate::args::{Bound, Errors, Signature};
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "RepeatVector",
    signature: Signature {
        params: &["n"],
        required: 1,
    },
    build,
};

struct RepeatVector {
    features: usize,
    n: usize,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let n = errors.ok(b.positive("n"));
    let rank = input.shape.rank();
    if rank != 1 {
        errors.push(Error::new(
            b.call.class.span(),
            format!(
                "`RepeatVector` expects a rank-1 input `(features,)`, but {} has rank {rank}\n  help: put `Flatten()` before it to repeat all {} values",
                input.phrase(),
                input.shape.len()
            ),
        ));
    }
    errors.into_result()?;
    let Some(n) = n else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `RepeatVector` arguments",
        ));
    };
    Ok(Box::new(RepeatVector {
        features: input.shape.last(),
        n,
    }))
}

impl Layer for RepeatVector {
    fn output_shape(&self) -> Shape {
        Shape(vec![self.n, self.features])
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        let (features, n) = (self.features, self.n);
        Some(SliceForward::Map(quote!(
            ::kiln::__private::layers::repeat_vector::repeat_vector_into::<#features, #n>(x, y)
        )))
    }

    fn forward(&self, _f: &Forward) -> TokenStream {
        let (features, n) = (self.features, self.n);
        quote!(::kiln::__private::layers::repeat_vector::repeat_vector::<_, #features, #n>(&x))
    }

    fn forward_train(&self, _f: &Forward) -> TokenStream {
        // Training draws the output from the step's pool and returns the input to it.
        let (features, n) = (self.features, self.n);
        quote!({
            let mut y = pass.pool.take::<#features>(x.ncols() * #n);
            ::kiln::__private::layers::repeat_vector::repeat_vector_into::<#features, #n>(x.as_slice(), y.as_mut_slice());
            pass.pool.give(x);
            (y, ())
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        if !b.need_input_grad {
            return Some(quote!({
                pass.pool.give(dy);
            }));
        }
        let (features, n) = (self.features, self.n);
        Some(quote!({
            let mut dx = pass.pool.take::<#features>(dy.ncols() / #n);
            ::kiln::__private::layers::repeat_vector::repeat_vector_backward_into::<#features, #n>(dy.as_slice(), dx.as_mut_slice());
            pass.pool.give(dy);
            dx
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeat(tokens: TokenStream, input: &[usize]) -> Result<Shape, String> {
        crate::layers::output_shape_for_test(&KIND, tokens, input, "layer `dense_1`")
    }

    #[test]
    fn repeats_a_vector_n_times() {
        assert_eq!(
            repeat(quote!(M = Sequential([RepeatVector(3)])), &[32]),
            Ok(Shape(vec![3, 32]))
        );
    }

    #[test]
    fn reports_rank_and_count_together() {
        let e = repeat(quote!(M = Sequential([RepeatVector(0)])), &[3, 4]).unwrap_err();
        assert!(
            e.contains("`n` of `RepeatVector` must be a positive integer, found `0`"),
            "{e}"
        );
        assert!(
            e.contains("its input (3, 4) from layer `dense_1` has rank 2"),
            "{e}"
        );
    }
}
