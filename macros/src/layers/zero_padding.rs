//! `ZeroPadding1D(padding = 1, data_format = None)` and `ZeroPadding2D(padding = (1, 1),
//! data_format = None)`: zeros around the spatial axes of each sample.
//!
//! `padding`, as Keras 3 reads it: 1D, an integer (both sides) or `(left, right)`; 2D, an
//! integer (all sides), `(rows, columns)` (symmetric) or `((top, bottom), (left, right))`,
//! where each entry may itself be an integer or a pair. Every value is a non-negative
//! integer.
//!
//! Shape rule: `(steps, features)` -> `(left + steps + right, features)`; `(height, width,
//! channels)` -> `(top + height + bottom, left + width + right, channels)`; channels first
//! when declared so. No weights; refuses a mask (Keras drops it).
//!
//! The generated code calls `kiln_runtime::layers::padding::ZeroPadding`; its backward pass
//! keeps the gradient of the values that came from the input.

use super::pooling::{channels_first, ints, spatial, Call, Kernel};
use super::{Layer, LayerInput, LayerKind};
use crate::args::{Bound, Errors, Signature};
use crate::ast::Value;
use quote::quote;
use syn::Error;

const PARAMS: &[&str] = &["padding", "data_format"];

pub const ZERO_PADDING_1D: LayerKind = LayerKind {
    class: "ZeroPadding1D",
    signature: Signature {
        params: PARAMS,
        required: 0,
    },
    build: |b, input| build(b, input, 1),
};

pub const ZERO_PADDING_2D: LayerKind = LayerKind {
    class: "ZeroPadding2D",
    signature: Signature {
        params: PARAMS,
        required: 0,
    },
    build: |b, input| build(b, input, 2),
};

fn build(b: &Bound, input: &LayerInput, dims: usize) -> Result<Box<dyn Layer>, Error> {
    let class = b.class();
    let mut errors = Errors::default();
    let first = errors.ok(channels_first(b));
    let pad = errors.ok(sides(b, "padding", dims, [[1, 1], [1, 1]]));
    let view = first.and_then(|first| errors.ok(spatial(b, input, dims, first)));
    errors.into_result()?;
    let (Some(pad), Some(view)) = (pad, view) else {
        return Err(Error::new_spanned(
            &b.call.call,
            format!("invalid `{class}` arguments"),
        ));
    };
    let grid = view.grid();
    let [[top, bottom], [left, right]] = pad;
    // Values are at most 2^24 each (checked), so these sums cannot overflow.
    let output = view.shape([view.height + top + bottom, view.width + left + right]);
    Ok(Box::new(Kernel {
        ty: quote!(::kiln::__private::layers::padding::ZeroPadding),
        ctor: quote!(::kiln::__private::layers::padding::ZeroPadding::new(#grid, [[#top, #bottom], [#left, #right]])),
        input: input.shape.clone(),
        output,
        call: Call::Plain,
    }))
}

/// `padding` or `cropping` as `[[top, bottom], [left, right]]` (1D data: `[[0, 0], [left,
/// right]]`), Keras 3's forms; `default` (a 2D value) when absent.
pub(super) fn sides(
    b: &Bound,
    name: &str,
    dims: usize,
    default: [[usize; 2]; 2],
) -> Result<[[usize; 2]; 2], Error> {
    let class = b.class();
    let Some(arg) = b.get(name) else {
        return Ok(if dims == 1 {
            [[0, 0], default[1]]
        } else {
            default
        });
    };
    let pair = |v: Vec<usize>| match v.as_slice() {
        [a, b] => [*a, *b],
        _ => [0, 0],
    };
    if dims == 1 {
        return Ok([[0, 0], pair(ints(arg, name, &class, 2, 0)?)]);
    }
    match &arg.value {
        Value::Int(_) => {
            let p = pair(ints(arg, name, &class, 2, 0)?);
            Ok([p, p])
        }
        Value::Tuple(items) | Value::List(items) if items.len() == 2 => {
            let mut errors = Errors::default();
            let rows = errors.ok(ints(&items[0], name, &class, 2, 0));
            let cols = errors.ok(ints(&items[1], name, &class, 2, 0));
            errors.into_result()?;
            Ok([pair(rows.unwrap_or_default()), pair(cols.unwrap_or_default())])
        }
        other => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected an integer, a pair `(rows, columns)` or a pair of pairs `((top, bottom), (left, right))` for `{name}` of `{class}`, found {}{}",
                other.describe(),
                match other {
                    Value::Tuple(items) | Value::List(items) => format!(" with {} entries", items.len()),
                    _ => String::new(),
                }
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::output_shape_for_test;
    use crate::shape::Shape;
    use proc_macro2::TokenStream;

    fn pad(kind: &LayerKind, tokens: TokenStream, input: &[usize]) -> Result<Shape, String> {
        output_shape_for_test(kind, tokens, input, "layer `dense`")
    }

    #[test]
    fn every_keras_padding_form_reads_the_same_way() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        assert_eq!(
            pad(
                &ZERO_PADDING_1D,
                quote!(M = Sequential([ZeroPadding1D()])),
                &[5, 2]
            ),
            s(&[7, 2])
        );
        let m = quote!(M = Sequential([ZeroPadding1D((0, 3), "channels_first")]));
        assert_eq!(pad(&ZERO_PADDING_1D, m, &[5, 2]), s(&[5, 5]));
        assert_eq!(
            pad(
                &ZERO_PADDING_2D,
                quote!(M = Sequential([ZeroPadding2D(2)])),
                &[3, 4, 1]
            ),
            s(&[7, 8, 1])
        );
        let m = quote!(M = Sequential([ZeroPadding2D((1, 0))]));
        assert_eq!(pad(&ZERO_PADDING_2D, m, &[3, 4, 1]), s(&[5, 4, 1]));
        let m =
            quote!(M = Sequential([ZeroPadding2D(((1, 2), 3), data_format = "channels_first")]));
        assert_eq!(pad(&ZERO_PADDING_2D, m, &[3, 4, 1]), s(&[3, 7, 7]));
    }

    #[test]
    fn negative_and_malformed_padding_is_refused() {
        let m = quote!(M = Sequential([ZeroPadding2D(((1, -2), (0, 0)))]));
        let e = pad(&ZERO_PADDING_2D, m, &[3, 4, 1]).unwrap_err();
        assert!(e.contains("each value in `padding` of `ZeroPadding2D` must be a non-negative integer, found `-2`"), "{e}");
        let m = quote!(M = Sequential([ZeroPadding2D((1, 2, 3))]));
        let e = pad(&ZERO_PADDING_2D, m, &[3, 4, 1]).unwrap_err();
        assert!(e.contains("found a tuple with 3 entries"), "{e}");
        let m = quote!(M = Sequential([ZeroPadding1D(-1)]));
        let e = pad(&ZERO_PADDING_1D, m, &[3, 4]).unwrap_err();
        assert!(
            e.contains("`padding` of `ZeroPadding1D` must be a non-negative integer, found `-1`"),
            "{e}"
        );
    }
}
