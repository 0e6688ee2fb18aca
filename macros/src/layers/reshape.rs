//! `Reshape(target_shape)`: each sample takes the shape `target_shape`, values kept in
//! row-major order.
//!
//! Shape rule: `(d1, ..., dn)` -> `target_shape`, whose element count must equal the input's.
//! At most one dimension may be `-1`; it is inferred as the input's element count divided
//! by the product of the others, which must divide evenly. Every other dimension must be
//! positive, and the target's rank is 1 to 4. No weights; refuses a mask.
//!
//! kiln's memory is row-major for every shape, so a reshape renames the matrix's shape
//! (`Tensor::reshaped`) and moves no value; so does its backward pass, back to the input's
//! shape ([`reshape_back`], shared with `Flatten`).

use super::{Backward, Forward, Layer, LayerInput, LayerKind, SliceForward};
use crate::args::{Bound, Errors, Signature};
use crate::ast::Value;
use crate::shape::tuple_text;
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Reshape",
    signature: Signature {
        params: &["target_shape"],
        required: 1,
    },
    build,
};

/// The largest per-sample rank kiln supports.
const MAX_RANK: usize = 4;

struct Reshape {
    input: Shape,
    output: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let Some(arg) = b.get("target_shape") else {
        return Err(Error::new_spanned(
            &b.call.call,
            "`Reshape` is missing its required argument `target_shape`",
        ));
    };
    // Type errors (not a tuple, non-integer items) come from the shared getter; the range
    // rules below are Reshape's own, so any integer passes here.
    let Some(dims) = b.int_tuple("target_shape", i128::MIN)? else {
        return Err(Error::new_spanned(
            &arg.expr,
            "expected a tuple of integers for `target_shape` of `Reshape`, found `None`",
        ));
    };
    let items = match &arg.value {
        Value::Tuple(items) | Value::List(items) => items.as_slice(),
        _ => &[],
    };
    let target = tuple_text(&dims);
    if dims.is_empty() {
        return Err(Error::new_spanned(
            &arg.expr,
            "`Reshape` target must have at least one dimension, like `(4,)`",
        ));
    }

    let mut errors = Errors::default();
    if dims.len() > MAX_RANK {
        errors.push(Error::new_spanned(
            &arg.expr,
            format!(
                "`Reshape` target {target} has rank {}, but kiln supports per-sample ranks 1 to {MAX_RANK}",
                dims.len()
            ),
        ));
    }
    let mut unknown = None;
    for (i, (&d, item)) in dims.iter().zip(items).enumerate() {
        if d == -1 {
            match unknown {
                None => unknown = Some(i),
                Some(first) => errors.push(Error::new_spanned(
                    &item.expr,
                    format!(
                        "`Reshape` target {target} has more than one `-1` (dimensions {} and {}); only one dimension can be inferred",
                        first + 1,
                        i + 1
                    ),
                )),
            }
        } else if d < 1 {
            errors.push(Error::new_spanned(
                &item.expr,
                format!(
                    "`Reshape` target dimensions must be positive, or `-1` for the one to infer; found `{d}` in {target}"
                ),
            ));
        }
    }
    errors.into_result()?;

    let elements = input.shape.len() as u128;
    let known = dims
        .iter()
        .filter(|&&d| d != -1)
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128));
    let output = match (unknown, known) {
        (Some(i), Some(known)) if elements.checked_rem(known) == Some(0) => {
            let mut dims = dims.clone();
            dims[i] = (elements / known) as i128;
            dims
        }
        (Some(_), known) => {
            let product = known.map_or("too many".to_string(), |k| k.to_string());
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "cannot infer the `-1` in `Reshape` target {target}: {} has {elements} elements, which is not a multiple of {product} (the product of the other dimensions)",
                    input.phrase()
                ),
            ));
        }
        (None, Some(known)) if known == elements => dims,
        (None, known) => {
            let count = known.map_or("too many".to_string(), |k| k.to_string());
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "`Reshape` target {target} has {count} elements, but {} has {elements}",
                    input.phrase()
                ),
            ));
        }
    };
    // Every dimension is now positive and their product is the input's element count.
    let output = Shape(output.into_iter().map(|d| d as usize).collect());
    Ok(Box::new(Reshape {
        input: input.shape.clone(),
        output,
    }))
}

impl Layer for Reshape {
    fn output_shape(&self) -> Shape {
        self.output.clone()
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        Some(SliceForward::Same)
    }

    fn forward(&self, _f: &Forward) -> TokenStream {
        let (rows, cols) = (self.output.last(), self.output.positions());
        quote!(::kiln::__private::Tensor::reshaped::<#rows, #cols>(x))
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        Some(reshape_back(&self.input, b))
    }
}

/// The backward pass of a layer that only renames the shape (`Reshape`, `Flatten`): the
/// gradient keeps its values and takes the layer's `input` shape back.
pub(super) fn reshape_back(input: &Shape, b: &Backward) -> TokenStream {
    if !b.need_input_grad {
        return quote!({
            pass.pool.give(dy);
        });
    }
    let (rows, cols) = (input.last(), input.positions());
    quote!(::kiln::__private::Tensor::reshaped::<#rows, #cols>(dy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn reshape(tokens: TokenStream, input: &[usize], source: &str) -> Result<Shape, String> {
        crate::layers::output_shape_for_test(&KIND, tokens, input, source)
    }

    #[test]
    fn infers_the_one_unknown_dimension() {
        let m = quote!(M = Sequential([Reshape((-1, 2, 2))]));
        assert_eq!(reshape(m, &[6, 2], "layer `r`"), Ok(Shape(vec![3, 2, 2])));
        let m = quote!(M = Sequential([Reshape([3, -1])]));
        assert_eq!(reshape(m, &[12], "the model input"), Ok(Shape(vec![3, 4])));
    }

    #[test]
    fn element_count_mismatch_names_both_shapes_and_counts() {
        let m = quote!(M = Sequential([Reshape((6, 4))]));
        assert_eq!(
            reshape(m.clone(), &[3, 4], "layer `dense_1`").unwrap_err(),
            "`Reshape` target (6, 4) has 24 elements, but its input (3, 4) from layer `dense_1` has 12"
        );
        assert_eq!(
            reshape(m, &[12], "the model input").unwrap_err(),
            "`Reshape` target (6, 4) has 24 elements, but the model input (12,) has 12"
        );
    }

    #[test]
    fn reports_every_bad_dimension() {
        let m = quote!(M = Sequential([Reshape((-1, 0, -1, -3, 2))]));
        let e = reshape(m, &[12], "the model input").unwrap_err();
        assert!(e.contains("has rank 5"), "{e}");
        assert!(e.contains("more than one `-1` (dimensions 1 and 3)"), "{e}");
        assert!(e.contains("found `0`"), "{e}");
        assert!(e.contains("found `-3`"), "{e}");
    }

    #[test]
    fn unknown_dimension_must_divide_evenly() {
        let m = quote!(M = Sequential([Reshape((-1, 5))]));
        let e = reshape(m, &[3, 4], "layer `d`").unwrap_err();
        assert!(
            e.contains("12 elements, which is not a multiple of 5"),
            "{e}"
        );
    }

    #[test]
    fn huge_targets_do_not_overflow() {
        let m = quote!(
            M = Sequential([Reshape((
                1000000000000,
                1000000000000,
                1000000000000,
                1000000000000
            ))])
        );
        let e = reshape(m, &[12], "the model input").unwrap_err();
        assert!(e.contains("has too many elements"), "{e}");
    }
}
