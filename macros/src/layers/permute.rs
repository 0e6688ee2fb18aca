//! `Permute(dims)`: reorders each sample's axes; `dims` is 1-based like Keras's and never
//! names the batch axis.
//!
//! Shape rule: `(d1, ..., dn)` -> `(d[dims[0]], ..., d[dims[n-1]])`, where `dims` must be a
//! permutation of `1..=n`. No weights; refuses a mask.
//!
//! The values move in memory, so the generated code calls the runtime kernel
//! `kiln_runtime::layers::permute::permute` (0-based dims), and the backward pass
//! `permute_backward` (the inverse permutation); the identity permutation emits nothing.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, SliceForward};
use crate::args::{Bound, Errors, Signature};
use crate::ast::Value;
use crate::shape::tuple_text;
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Permute",
    signature: Signature {
        params: &["dims"],
        required: 1,
    },
    build,
};

struct Permute {
    input: Shape,
    /// 0-based: output axis `k` is input axis `order[k]`.
    order: Vec<usize>,
    output: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let Some(arg) = b.get("dims") else {
        return Err(Error::new_spanned(
            &b.call.call,
            "`Permute` is missing its required argument `dims`",
        ));
    };
    let Some(dims) = b.int_tuple("dims", i128::MIN)? else {
        return Err(Error::new_spanned(
            &arg.expr,
            "expected a tuple of integers for `dims` of `Permute`, found `None`",
        ));
    };
    let items = match &arg.value {
        Value::Tuple(items) | Value::List(items) => items.as_slice(),
        _ => &[],
    };
    let rank = input.shape.rank();
    let text = tuple_text(&dims);
    let identity: Vec<i128> = (1..=rank as i128).collect();
    let expected = format!(
        "expected a permutation of 1..={rank} (1-based, without the batch axis), like {}",
        tuple_text(&identity)
    );

    let mut errors = Errors::default();
    if dims.len() != rank {
        errors.push(Error::new_spanned(
            &arg.expr,
            format!(
                "`Permute` dims {text} have {} {}, but {} has rank {rank}\n  help: {expected}",
                dims.len(),
                if dims.len() == 1 { "entry" } else { "entries" },
                input.phrase(),
            ),
        ));
    }
    for (&d, item) in dims.iter().zip(items) {
        if d < 1 || d > rank as i128 {
            errors.push(Error::new_spanned(
                &item.expr,
                format!(
                    "`Permute` index `{d}` in {text} is out of range for {} of rank {rank}\n  help: {expected}",
                    input.phrase()
                ),
            ));
        }
    }
    errors.into_result()?;

    // Right length, every index in range: a repeat is exactly what leaves an index missing.
    let mut seen = vec![false; rank];
    let mut repeated = None;
    for (&d, item) in dims.iter().zip(items) {
        let axis = (d - 1) as usize;
        if seen[axis] && repeated.is_none() {
            repeated = Some((d, item));
        }
        seen[axis] = true;
    }
    if let Some((d, item)) = repeated {
        let missing: Vec<String> = (1..=rank)
            .filter(|a| !seen[a - 1])
            .map(|a| format!("`{a}`"))
            .collect();
        return Err(Error::new_spanned(
            &item.expr,
            format!(
                "`Permute` dims {text} repeat index `{d}` and miss {} {}, but {} has rank {rank}\n  help: {expected}",
                if missing.len() == 1 { "index" } else { "indices" },
                missing.join(", "),
                input.phrase()
            ),
        ));
    }

    let order: Vec<usize> = dims.iter().map(|&d| (d - 1) as usize).collect();
    let output = Shape(order.iter().map(|&a| input.shape.0[a]).collect());
    Ok(Box::new(Permute {
        input: input.shape.clone(),
        order,
        output,
    }))
}

impl Layer for Permute {
    fn output_shape(&self) -> Shape {
        self.output.clone()
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        if self.is_identity() {
            return Some(SliceForward::Same);
        }
        let shape = self.input.slice_tokens();
        let order = &self.order;
        Some(SliceForward::Map(quote!(
            ::kiln::__private::layers::permute::permute_into(x, #shape, &[#(#order),*], y)
        )))
    }

    fn forward(&self, _f: &Forward) -> TokenStream {
        if self.is_identity() {
            return quote!(x);
        }
        let (rows, cols) = (self.output.last(), self.output.positions());
        let shape = self.input.slice_tokens();
        let order = &self.order;
        quote!(::kiln::__private::layers::permute::permute::<_, #rows, #cols>(&x, #shape, &[#(#order),*]))
    }

    fn forward_train(&self, f: &Forward) -> TokenStream {
        if self.is_identity() {
            return quote!((x, ()));
        }
        let _ = f;
        // Training draws the output from the step's pool and returns the input to it.
        let rows = self.output.last();
        let shape = self.input.slice_tokens();
        let order = &self.order;
        quote!({
            let mut y = pass.pool.take::<#rows>(x.len() / #rows);
            ::kiln::__private::layers::permute::permute_into(x.as_slice(), #shape, &[#(#order),*], y.as_mut_slice());
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
        if self.is_identity() {
            return Some(quote!(dy));
        }
        // The inverse permutation, read from the output's layout back to the input's.
        let mut inverse = vec![0usize; self.order.len()];
        for (k, &axis) in self.order.iter().enumerate() {
            inverse[axis] = k;
        }
        let rows = self.input.last();
        let out_shape = self.output.slice_tokens();
        Some(quote!({
            let mut dx = pass.pool.take::<#rows>(dy.len() / #rows);
            ::kiln::__private::layers::permute::permute_into(dy.as_slice(), #out_shape, &[#(#inverse),*], dx.as_mut_slice());
            pass.pool.give(dy);
            dx
        }))
    }
}

impl Permute {
    fn is_identity(&self) -> bool {
        self.order.iter().enumerate().all(|(k, &a)| k == a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permute(tokens: TokenStream, input: &[usize]) -> Result<Shape, String> {
        crate::layers::output_shape_for_test(&KIND, tokens, input, "layer `dense`")
    }

    #[test]
    fn output_axis_k_is_input_axis_dims_k() {
        let m = quote!(M = Sequential([Permute((2, 1))]));
        assert_eq!(permute(m, &[10, 64]), Ok(Shape(vec![64, 10])));
        let m = quote!(M = Sequential([Permute((3, 1, 2))]));
        assert_eq!(permute(m, &[2, 3, 4]), Ok(Shape(vec![4, 2, 3])));
    }

    #[test]
    fn names_the_repeated_and_missing_indices() {
        let m = quote!(M = Sequential([Permute((2, 2, 2))]));
        let e = permute(m, &[2, 3, 4]).unwrap_err();
        assert!(
            e.contains("repeat index `2` and miss indices `1`, `3`"),
            "{e}"
        );
        assert!(
            e.contains("but its input (2, 3, 4) from layer `dense` has rank 3"),
            "{e}"
        );
    }

    #[test]
    fn zero_based_dims_are_out_of_range() {
        let m = quote!(M = Sequential([Permute((0, 1))]));
        let e = permute(m, &[10, 64]).unwrap_err();
        assert!(e.contains("index `0` in (0, 1) is out of range"), "{e}");
        assert!(e.contains("1-based"), "{e}");
        let m = quote!(M = Sequential([Permute((1, 3, 2))]));
        let e = permute(m, &[10, 64]).unwrap_err();
        assert!(e.contains("have 3 entries, but its input (10, 64)"), "{e}");
        assert!(e.contains("index `3` in (1, 3, 2) is out of range"), "{e}");
    }
}
