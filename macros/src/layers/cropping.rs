//! `Cropping1D(cropping = (1, 1))` and `Cropping2D(cropping = ((0, 0), (0, 0)), data_format
//! = None)`: cuts values off the spatial axes of each sample.
//!
//! `cropping`, as Keras 3 reads it: 1D, an integer (both ends) or `(start, end)`; 2D, an
//! integer (all sides), `(rows, columns)` (symmetric) or `((top, bottom), (left, right))`.
//! Every value is a non-negative integer, and each axis must keep at least one position
//! (Keras: the crop must be smaller than the input). `Cropping1D` has no `data_format`.
//!
//! Shape rule: `(steps, features)` -> `(steps - start - end, features)`; `(height, width,
//! channels)` -> `(height - top - bottom, width - left - right, channels)`; channels first
//! when declared so. No weights; refuses a mask (Keras drops it).
//!
//! The generated code calls `kiln_runtime::layers::cropping::Cropping`; its backward pass
//! puts the gradient back with zeros where the crop cut.

use super::pooling::{at_arg, channels_first, spatial, Call, Kernel};
use super::zero_padding::sides;
use super::{Layer, LayerInput, LayerKind};
use crate::args::{Bound, Errors, Signature};
use quote::quote;
use syn::Error;

pub const CROPPING_1D: LayerKind = LayerKind {
    class: "Cropping1D",
    signature: Signature {
        params: &["cropping"],
        required: 0,
    },
    build: |b, input| build(b, input, 1, [[0, 0], [1, 1]]),
};

pub const CROPPING_2D: LayerKind = LayerKind {
    class: "Cropping2D",
    signature: Signature {
        params: &["cropping", "data_format"],
        required: 0,
    },
    build: |b, input| build(b, input, 2, [[0, 0], [0, 0]]),
};

fn build(
    b: &Bound,
    input: &LayerInput,
    dims: usize,
    default: [[usize; 2]; 2],
) -> Result<Box<dyn Layer>, Error> {
    let class = b.class();
    let mut errors = Errors::default();
    let first = errors.ok(channels_first(b));
    let crop = errors.ok(sides(b, "cropping", dims, default));
    let view = first.and_then(|first| errors.ok(spatial(b, input, dims, first)));
    errors.into_result()?;
    let (Some(crop), Some(view)) = (crop, view) else {
        return Err(Error::new_spanned(
            &b.call.call,
            format!("invalid `{class}` arguments"),
        ));
    };
    let extents = view.extents();
    let names = if dims == 1 {
        [("", ""), ("step", "steps")]
    } else {
        [("row", "rows"), ("column", "columns")]
    };
    let mut errors = Errors::default();
    for d in (2 - dims)..2 {
        let [start, end] = crop[d];
        let (one, many) = names[d];
        if start + end >= extents[d] {
            errors.push(at_arg(
                b,
                "cropping",
                format!(
                    "`{class}` crops {start} + {end} {many} from the {} {} of {}, leaving none\n  help: crop at most {} {} in all",
                    extents[d],
                    if extents[d] == 1 { one } else { many },
                    input.phrase(),
                    extents[d] - 1,
                    if extents[d] == 2 { one } else { many },
                ),
            ));
        }
    }
    errors.into_result()?;
    let grid = view.grid();
    let [[top, bottom], [left, right]] = crop;
    let output = view.shape([extents[0] - top - bottom, extents[1] - left - right]);
    Ok(Box::new(Kernel {
        ty: quote!(::kiln::__private::layers::cropping::Cropping),
        ctor: quote!(::kiln::__private::layers::cropping::Cropping::new(#grid, [[#top, #bottom], [#left, #right]])),
        input: input.shape.clone(),
        output,
        call: Call::Plain,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::output_shape_for_test;
    use crate::shape::Shape;
    use proc_macro2::TokenStream;

    fn crop(kind: &LayerKind, tokens: TokenStream, input: &[usize]) -> Result<Shape, String> {
        output_shape_for_test(kind, tokens, input, "layer `dense`")
    }

    #[test]
    fn crops_each_axis_by_its_pair() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        assert_eq!(
            crop(
                &CROPPING_1D,
                quote!(M = Sequential([Cropping1D()])),
                &[5, 2]
            ),
            s(&[3, 2])
        );
        assert_eq!(
            crop(
                &CROPPING_1D,
                quote!(M = Sequential([Cropping1D((0, 2))])),
                &[5, 2]
            ),
            s(&[3, 2])
        );
        assert_eq!(
            crop(
                &CROPPING_2D,
                quote!(M = Sequential([Cropping2D()])),
                &[3, 4, 1]
            ),
            s(&[3, 4, 1])
        );
        let m = quote!(M = Sequential([Cropping2D(((1, 0), 1), data_format = "channels_first")]));
        assert_eq!(crop(&CROPPING_2D, m, &[2, 3, 4]), s(&[2, 2, 2]));
    }

    #[test]
    fn cropping_everything_is_refused_per_axis() {
        let m = quote!(M = Sequential([Cropping2D(((2, 2), (0, 5)))]));
        let e = crop(&CROPPING_2D, m, &[4, 5, 3]).unwrap_err();
        assert!(e.contains("`Cropping2D` crops 2 + 2 rows from the 4 rows of its input (4, 5, 3) from layer `dense`, leaving none"), "{e}");
        assert!(e.contains("help: crop at most 3 rows in all"), "{e}");
        assert!(e.contains("crops 0 + 5 columns from the 5 columns"), "{e}");
        // The default (1, 1) on two steps points at the layer.
        let e = crop(
            &CROPPING_1D,
            quote!(M = Sequential([Cropping1D()])),
            &[2, 3],
        )
        .unwrap_err();
        assert!(e.contains("crops 1 + 1 steps from the 2 steps of its input (2, 3) from layer `dense`, leaving none\n  help: crop at most 1 step in all"), "{e}");
        let e = crop(
            &CROPPING_1D,
            quote!(M = Sequential([Cropping1D(data_format = "channels_first")])),
            &[2, 3],
        )
        .unwrap_err();
        assert!(
            e.contains("`Cropping1D` has no argument `data_format`"),
            "{e}"
        );
    }
}
