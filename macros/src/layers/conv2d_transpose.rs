//! `Conv2DTranspose(filters, kernel_size, strides = (1, 1), padding = "valid",
//! output_padding = None, data_format = None, dilation_rate = (1, 1), activation = None,
//! use_bias = True, kernel_initializer = "glorot_uniform", bias_initializer = "zeros",
//! kernel_regularizer = None, bias_regularizer = None, activity_regularizer = None,
//! kernel_constraint = None, bias_constraint = None)`: the transpose of a 2-D convolution
//! (the input gradient of the convolution with the same kernel, from its output back to its
//! input), plus bias, then the activation, as Keras 3's `conv_transpose` computes it on JAX.
//!
//! Shape rule: `(h, w, channels)` -> `(new_h, new_w, filters)` (channels first:
//! `(channels, h, w)` -> `(filters, new_h, new_w)`), each axis of size `n` growing, with
//! `e = (k - 1) * dilation + 1`, as Keras 3's `compute_conv_transpose_output_shape`:
//! - `valid`: `(n - 1) * strides + max(e, strides)`, or `(n - 1) * strides + e +
//!   output_padding`;
//! - `same`: `n * strides`, or `(n - 1) * strides + e % 2 + output_padding`, which is an
//!   error when it is 0 (an input of size 1, an even `e`, `output_padding = 0`).
//!
//! `output_padding`: `None`, an integer or one per axis, each at least 0 and less than the
//! stride along its axis (Keras 3 refuses the rest). Not `strides > 1` together with
//! `dilation_rate > 1` (Keras 3 refuses it). No `groups` (Keras 3 has none here).
//!
//! Weights: `kernel` `(kh, kw, filters, channels)` — output channels before input ones, the
//! kernel of the convolution it transposes — and `bias` `(filters,)`. A mask is refused.

use super::conv::{self, Form, Spelling};
use super::{Layer, LayerInput, LayerKind};
use crate::args::{Bound, Signature};
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Conv2DTranspose",
    signature: Signature {
        params: &[
            "filters",
            "kernel_size",
            "strides",
            "padding",
            "output_padding",
            "data_format",
            "dilation_rate",
            "activation",
            "use_bias",
            "kernel_initializer",
            "bias_initializer",
            "kernel_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "kernel_constraint",
            "bias_constraint",
        ],
        required: 2,
    },
    build,
};

const SPELLING: Spelling = Spelling {
    groups: None,
    form: Form::Transpose,
    ..conv::keras3(2)
};

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    conv::build(b, input, &SPELLING)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::output_shape_for_test;
    use crate::shape::Shape;
    use quote::quote;

    fn shape(layer: proc_macro2::TokenStream, input: &[usize]) -> Result<Shape, String> {
        output_shape_for_test(
            &KIND,
            quote!(M = Sequential([#layer])),
            input,
            "layer `dense`",
        )
    }

    /// The sizes Keras 3 computes (checked against `compute_output_shape` and a call).
    #[test]
    fn output_sizes_follow_keras() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        let x = [4, 5, 3];
        assert_eq!(shape(quote!(Conv2DTranspose(2, 3)), &x), s(&[6, 7, 2]));
        assert_eq!(
            shape(quote!(Conv2DTranspose(2, 3, 2, "same")), &x),
            s(&[8, 10, 2])
        );
        assert_eq!(
            shape(quote!(Conv2DTranspose(2, (4, 3), (2, 3), "same")), &x),
            s(&[8, 15, 2])
        );
        assert_eq!(
            shape(
                quote!(Conv2DTranspose(2, (3, 2), 2, output_padding = (1, 0))),
                &x
            ),
            s(&[10, 10, 2])
        );
        assert_eq!(
            shape(
                quote!(Conv2DTranspose(
                    2,
                    4,
                    (3, 2),
                    "same",
                    output_padding = (2, 1)
                )),
                &x
            ),
            s(&[11, 9, 2])
        );
        // A kernel narrower than the stride: `valid` fills `max(e, s)` per input position.
        assert_eq!(shape(quote!(Conv2DTranspose(2, 2, 3)), &x), s(&[12, 15, 2]));
        assert_eq!(
            shape(
                quote!(Conv2DTranspose(
                    2,
                    3,
                    dilation_rate = (2, 3),
                    padding = "same"
                )),
                &x
            ),
            s(&[4, 5, 2])
        );
        assert_eq!(
            shape(
                quote!(Conv2DTranspose(
                    2,
                    2,
                    padding = "same",
                    output_padding = None
                )),
                &[3, 1, 1]
            ),
            s(&[3, 1, 2])
        );
        assert_eq!(
            shape(
                quote!(Conv2DTranspose(5, 3, 2, data_format = "channels_first")),
                &[3, 4, 5]
            ),
            s(&[5, 9, 11])
        );
    }

    #[test]
    fn every_rule_is_an_error_at_its_argument() {
        let e = shape(
            quote!(Conv2DTranspose(2, 3, 2, output_padding = 2)),
            &[4, 5, 3],
        )
        .unwrap_err();
        assert!(e.contains("`output_padding` of `Conv2DTranspose` must be less than `strides` along each axis (Keras 3 refuses it), found `output_padding = (2, 2)` and `strides = (2, 2)`"), "{e}");
        let e = shape(
            quote!(Conv2DTranspose(2, 3, output_padding = (0, -1))),
            &[4, 5, 3],
        )
        .unwrap_err();
        assert!(e.contains("each value in `output_padding` of `Conv2DTranspose` must be at least 0, found `-1`"), "{e}");
        let e = shape(
            quote!(Conv2DTranspose(2, 3, 2, dilation_rate = 2)),
            &[4, 5, 3],
        )
        .unwrap_err();
        assert!(
            e.contains("cannot combine `strides` > 1 with `dilation_rate` > 1"),
            "{e}"
        );
        let e = shape(
            quote!(Conv2DTranspose(2, 2, padding = "same", output_padding = 0)),
            &[1, 3, 1],
        )
        .unwrap_err();
        assert!(
            e.contains("`Conv2DTranspose` output height would be 0"),
            "{e}"
        );
        assert!(!e.contains("width"), "{e}");
        let e = shape(quote!(Conv2DTranspose(2, 3, groups = 2)), &[4, 5, 3]).unwrap_err();
        assert!(
            e.contains("`Conv2DTranspose` has no argument `groups`"),
            "{e}"
        );
    }

    /// Extreme values are errors (or huge but exact shapes), never an overflow panic.
    #[test]
    fn extreme_values_never_panic() {
        for layer in [
            quote!(Conv2DTranspose(
                16777216,
                16777216,
                16777216,
                output_padding = 16777215
            )),
            quote!(Conv2DTranspose(
                1,
                16777216,
                padding = "same",
                dilation_rate = 16777216
            )),
            quote!(Conv2DTranspose(
                1,
                1,
                16777216,
                "same",
                output_padding = (16777215, 0)
            )),
            quote!(Conv2DTranspose(
                1,
                2,
                output_padding = 100000000000000000000
            )),
            quote!(Conv2DTranspose(1, 2, output_padding = "1")),
        ] {
            for input in [&[1 << 24, 1 << 24, 1 << 24][..], &[1, 1, 1], &[3, 4]] {
                let _ = shape(layer.clone(), input);
            }
        }
    }
}
