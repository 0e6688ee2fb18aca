//! `Conv2D(filters, kernel_size, strides = 1, padding = "valid", data_format = None,
//! dilation_rate = 1, groups = 1, activation = None, use_bias = True,
//! kernel_initializer = "glorot_uniform", bias_initializer = "zeros",
//! kernel_regularizer = None, bias_regularizer = None, activity_regularizer = None,
//! kernel_constraint = None, bias_constraint = None)`: a 2-D cross-correlation, plus bias,
//! then the activation, as Keras 3 computes it.
//!
//! Shape rule: `(h, w, channels)` -> `(new_h, new_w, filters)`, or with
//! `data_format = "channels_first"` `(channels, h, w)` -> `(filters, new_h, new_w)`; sizes
//! as in `conv.rs` (`valid` or `same`). Weights: `kernel` `(kh, kw, channels / groups,
//! filters)` whatever the data format, `bias` `(filters,)`. A mask is refused (Keras's
//! convolutions do not support masking).
//!
//! Positional arguments are Keras 3's: `Conv2D(64, 3, 3)` has strides 3 (Keras 2 read its
//! third integer as the kernel's width); write `Conv2D(64, (3, 3))`, or Keras 1's
//! `Convolution2D(64, 3, 3)`.
//!
//! Keras 1's spelling, `Convolution2D(nb_filter, nb_row, nb_col, init = "glorot_uniform",
//! activation = None, weights = None, border_mode = "valid", subsample = (1, 1),
//! dim_ordering = "default", W_regularizer = None, b_regularizer = None,
//! activity_regularizer = None, W_constraint = None, b_constraint = None, bias = True)`, builds
//! the same layer: `border_mode` is `padding`, `subsample` `strides`, `dim_ordering = "th"`
//! channels first and `"tf"` channels last (`"default"`, or Keras 2's `data_format`
//! instead, work too; kiln's default stays channels last), `init` the kernel initializer,
//! `W_*`/`b_*` the kernel's and bias's regularizer and constraint, `bias` `use_bias`. It is
//! named and summarised as Keras 2 and 3 convert it, a `Conv2D` called `conv2d`, `conv2d_1`,
//! ... with weights `conv2d/kernel` in Keras 3's layout `(kh, kw, channels, filters)` —
//! Keras 1's Theano-ordered kernels were `(filters, channels, kh, kw)`, and flipped, so
//! weights saved by Keras 1 need converting (Keras 2's loader did it). `weights = [...]` is
//! refused: kiln sets weights by name.

use super::conv::{self, Kernel, Spelling};
use super::{Layer, LayerInput, LayerKind};
use crate::args::{Bound, Signature};
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Conv2D",
    signature: Signature {
        params: conv::KERAS3_PARAMS,
        required: 2,
    },
    build,
};

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    conv::build(b, input, &conv::keras3(2))
}

/// Keras 1's `Convolution2D`, with Keras 2's `data_format` accepted beside `dim_ordering`.
pub const KERAS1_KIND: LayerKind = LayerKind {
    class: "Convolution2D",
    signature: Signature {
        params: &[
            "nb_filter",
            "nb_row",
            "nb_col",
            "init",
            "activation",
            "weights",
            "border_mode",
            "subsample",
            "dim_ordering",
            "W_regularizer",
            "b_regularizer",
            "activity_regularizer",
            "W_constraint",
            "b_constraint",
            "bias",
            "data_format",
        ],
        required: 3,
    },
    build: build_keras1,
};

const KERAS1: Spelling = Spelling {
    rank: 2,
    filters: "nb_filter",
    kernel: Kernel::PerAxis(&["nb_row", "nb_col"]),
    strides: "subsample",
    padding: "border_mode",
    causal: false,
    data_format: Some("data_format"),
    dim_ordering: Some("dim_ordering"),
    dilation_rate: None,
    groups: None,
    kernel_initializer: "init",
    bias_initializer: None,
    use_bias: "bias",
    kernel_regularizer: "W_regularizer",
    bias_regularizer: "b_regularizer",
    kernel_constraint: "W_constraint",
    bias_constraint: "b_constraint",
    keras1: true,
    form: conv::Form::Conv,
};

fn build_keras1(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    conv::build(b, input, &KERAS1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::output_shape_for_test;
    use crate::shape::Shape;
    use quote::quote;

    fn shape(
        kind: &LayerKind,
        layer: proc_macro2::TokenStream,
        input: &[usize],
    ) -> Result<Shape, String> {
        output_shape_for_test(
            kind,
            quote!(M = Sequential([#layer])),
            input,
            "layer `dense`",
        )
    }

    #[test]
    fn output_sizes_follow_keras() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        assert_eq!(
            shape(&KIND, quote!(Conv2D(4, 3)), &[6, 5, 3]),
            s(&[4, 3, 4])
        );
        // `same` with stride 2 on odd sizes: ceil(7 / 2) = 4, ceil(6 / 2) = 3.
        assert_eq!(
            shape(
                &KIND,
                quote!(Conv2D(3, (3, 2), strides = 2, padding = "same")),
                &[7, 6, 2]
            ),
            s(&[4, 3, 3])
        );
        // Valid with strides (2, 1): floor((7 - 2) / 2) + 1 = 3, 6 - 3 + 1 = 4.
        assert_eq!(
            shape(
                &KIND,
                quote!(Conv2D(
                    5,
                    (2, 3),
                    strides = (2, 1),
                    data_format = "channels_first"
                )),
                &[2, 7, 6]
            ),
            s(&[5, 3, 4])
        );
        // Dilation 2 spans 5: 7 - 5 + 1 = 3.
        assert_eq!(
            shape(&KIND, quote!(Conv2D(2, 3, dilation_rate = 2)), &[7, 7, 1]),
            s(&[3, 3, 2])
        );
        // `same` accepts a kernel larger than the input, as Keras does.
        assert_eq!(
            shape(&KIND, quote!(Conv2D(2, 5, padding = "SAME")), &[3, 4, 2]),
            s(&[3, 4, 2])
        );
        // Keras 1's spelling of the notes.
        assert_eq!(
            shape(
                &KERAS1_KIND,
                quote!(Convolution2D(
                    64,
                    3,
                    3,
                    border_mode = "same",
                    dim_ordering = "th"
                )),
                &[3, 32, 32]
            ),
            s(&[64, 32, 32])
        );
    }

    #[test]
    fn every_rule_is_an_error_at_its_argument() {
        let e = shape(&KIND, quote!(Conv2D(4, 5)), &[4, 6, 3]).unwrap_err();
        assert!(e.contains("`Conv2D` kernel height 5 is larger than the height 4 of its input (4, 6, 3) from layer `dense`"), "{e}");
        let e = shape(&KIND, quote!(Conv2D(4, 3, padding = "causal")), &[4, 6, 3]).unwrap_err();
        assert!(e.contains("is only for `Conv1D`"), "{e}");
        let e = shape(&KIND, quote!(Conv2D(6, 3, groups = 4)), &[4, 6, 3]).unwrap_err();
        assert!(e.contains("must divide `filters`, found 6 filters"), "{e}");
        assert!(e.contains("must divide the input channels, but its input (4, 6, 3) from layer `dense` has 3 channels"), "{e}");
        let e = shape(&KIND, quote!(Conv2D(0, (3, 0), strides = -1)), &[4, 6, 3]).unwrap_err();
        assert!(
            e.contains("`filters` of `Conv2D` must be a positive integer, found `0`"),
            "{e}"
        );
        assert!(
            e.contains(
                "each value in `kernel_size` of `Conv2D` must be a positive integer, found `0`"
            ),
            "{e}"
        );
        assert!(
            e.contains("`strides` of `Conv2D` must be a positive integer, found `-1`"),
            "{e}"
        );
        let e = shape(&KIND, quote!(Conv2D(4, (3, 3, 3))), &[4, 6, 3]).unwrap_err();
        assert!(e.contains("expected an integer or 2 values for `kernel_size` of `Conv2D`, like `3` or `(3, 3)`, found 3 values"), "{e}");
        let e = shape(
            &KIND,
            quote!(Conv2D(4, 3, strides = 2, dilation_rate = (1, 2))),
            &[8, 8, 3],
        )
        .unwrap_err();
        assert!(
            e.contains("found `strides = (2, 2)` and `dilation_rate = (1, 2)`"),
            "{e}"
        );
        let e = shape(&KIND, quote!(Conv2D(4, 3)), &[8, 8]).unwrap_err();
        assert!(e.contains("`Conv2D` expects a rank-3 input `(height, width, channels)`, but its input (8, 8) from layer `dense` has rank 2"), "{e}");
        assert!(e.contains("`Reshape((8, 8, 1))`"), "{e}");
        let e = shape(
            &KIND,
            quote!(Conv2D(
                4,
                3,
                padding = "vaild",
                data_format = "channel_first"
            )),
            &[8, 8, 3],
        )
        .unwrap_err();
        assert!(e.contains("did you mean `valid`?"), "{e}");
        assert!(e.contains("did you mean `channels_first`?"), "{e}");
    }

    /// Extreme values are errors (or huge but exact shapes), never an overflow panic.
    #[test]
    fn extreme_values_never_panic() {
        let big = [1usize << 24, 1 << 24, 1 << 24];
        for layer in [
            quote!(Conv2D(100000000000000000000, 3)),
            quote!(Conv2D(
                18446744073709551615,
                (16777216, 16777216),
                dilation_rate = 16777216
            )),
            quote!(Conv2D(4, 16777217, strides = (16777216, 1))),
            quote!(Conv2D(
                4,
                16777216,
                padding = "same",
                dilation_rate = 16777216
            )),
            quote!(Conv2D(
                4,
                3,
                strides = 16777216,
                padding = "same",
                groups = 16777216
            )),
            quote!(Conv2D(4, (), strides = [], dilation_rate = (1, 2, 3))),
            quote!(Conv2D(
                4,
                3.5,
                strides = "2",
                padding = 1,
                data_format = 2,
                groups = -1
            )),
            quote!(Convolution2D(
                -1,
                0,
                18446744073709551616,
                subsample = (0, 0),
                dim_ordering = "xy"
            )),
        ] {
            for input in [&big[..], &[1, 1, 1], &[3, 4], &[5, 5, 5, 5]] {
                let _ = shape(&KIND, layer.clone(), input);
                let _ = shape(&KERAS1_KIND, layer.clone(), input);
            }
        }
    }

    #[test]
    fn keras1_spelling_errors_point_to_kiln_and_keras3() {
        let e = shape(&KERAS1_KIND, quote!(Convolution2D(64, (3, 3))), &[8, 8, 3]).unwrap_err();
        assert!(e.contains("missing its required argument `nb_col`"), "{e}");
        let e = shape(
            &KERAS1_KIND,
            quote!(Convolution2D(64, (3, 3), 3)),
            &[8, 8, 3],
        )
        .unwrap_err();
        assert!(e.contains("use `Conv2D(filters, kernel_size, ...)`"), "{e}");
        let e = shape(
            &KERAS1_KIND,
            quote!(Convolution2D(
                8,
                3,
                3,
                border_mode = "full",
                dim_ordering = "th",
                data_format = "channels_first",
                weights = [1]
            )),
            &[8, 8, 3],
        )
        .unwrap_err();
        assert!(e.contains("no Keras 3 equivalent"), "{e}");
        assert!(e.contains("not both"), "{e}");
        assert!(
            e.contains("`weights` of `Convolution2D` is not supported"),
            "{e}"
        );
    }
}
