//! `Conv1D(filters, kernel_size, strides = 1, padding = "valid", data_format = None,
//! dilation_rate = 1, groups = 1, activation = None, use_bias = True,
//! kernel_initializer = "glorot_uniform", bias_initializer = "zeros",
//! kernel_regularizer = None, bias_regularizer = None, activity_regularizer = None,
//! kernel_constraint = None, bias_constraint = None)`: a 1-D cross-correlation over steps,
//! plus bias, then the activation, as Keras 3 computes it.
//!
//! Shape rule: `(steps, channels)` -> `(new_steps, filters)`, or with
//! `data_format = "channels_first"` `(channels, steps)` -> `(filters, new_steps)`; sizes as
//! in `conv.rs` (`valid`, `same`, or `causal`: `e - 1` zeros before the steps, so output
//! step `t` sees only inputs up to `t`). Weights: `kernel` `(kw, channels / groups,
//! filters)`, `bias` `(filters,)`. A mask is refused.
//!
//! Keras 1's spelling, `Convolution1D(nb_filter, filter_length, init = "glorot_uniform",
//! activation = None, weights = None, border_mode = "valid", subsample_length = 1,
//! W_regularizer = None, b_regularizer = None, activity_regularizer = None,
//! W_constraint = None, b_constraint = None, bias = True)`, builds the same layer, named
//! `conv1d` as Keras 2 and 3 convert it (see `conv2d.rs`). Its `input_length` is refused
//! with the `input_shape` to write instead.

use super::conv::{self, Kernel, Spelling};
use super::{Layer, LayerInput, LayerKind};
use crate::args::{Bound, Signature};
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Conv1D",
    signature: Signature {
        params: conv::KERAS3_PARAMS,
        required: 2,
    },
    build,
};

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    conv::build(b, input, &conv::keras3(1))
}

/// Keras 1's `Convolution1D`.
pub const KERAS1_KIND: LayerKind = LayerKind {
    class: "Convolution1D",
    signature: Signature {
        params: &[
            "nb_filter",
            "filter_length",
            "init",
            "activation",
            "weights",
            "border_mode",
            "subsample_length",
            "W_regularizer",
            "b_regularizer",
            "activity_regularizer",
            "W_constraint",
            "b_constraint",
            "bias",
            "input_length",
        ],
        required: 2,
    },
    build: build_keras1,
};

const KERAS1: Spelling = Spelling {
    rank: 1,
    filters: "nb_filter",
    kernel: Kernel::PerAxis(&["filter_length"]),
    strides: "subsample_length",
    padding: "border_mode",
    causal: false,
    data_format: None,
    dim_ordering: None,
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
            "the model input",
        )
    }

    #[test]
    fn output_sizes_follow_keras() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        assert_eq!(shape(&KIND, quote!(Conv1D(4, 3)), &[9, 3]), s(&[7, 4]));
        assert_eq!(
            shape(
                &KIND,
                quote!(Conv1D(5, 4, strides = 2, padding = "same")),
                &[10, 3]
            ),
            s(&[5, 5])
        );
        assert_eq!(
            shape(
                &KIND,
                quote!(Conv1D(3, 3, padding = "causal", dilation_rate = 2)),
                &[11, 2]
            ),
            s(&[11, 3])
        );
        assert_eq!(
            shape(
                &KIND,
                quote!(Conv1D(3, (3,), strides = (3,), padding = "causal")),
                &[11, 2]
            ),
            s(&[4, 3])
        );
        assert_eq!(
            shape(
                &KIND,
                quote!(Conv1D(4, 3, groups = 2, data_format = "channels_first")),
                &[4, 9]
            ),
            s(&[4, 7])
        );
        assert_eq!(
            shape(
                &KERAS1_KIND,
                quote!(Convolution1D(
                    6,
                    3,
                    border_mode = "same",
                    subsample_length = 2
                )),
                &[9, 2]
            ),
            s(&[5, 6])
        );
    }

    #[test]
    fn errors_name_the_axis_and_the_fix() {
        let e = shape(&KIND, quote!(Conv1D(4, 3, dilation_rate = 4)), &[7, 2]).unwrap_err();
        assert!(e.contains("`Conv1D` kernel length 3 dilated by 4 spans 9, which is larger than the length 7 of the model input (7, 2)"), "{e}");
        let e = shape(&KIND, quote!(Conv1D(4, 3)), &[7]).unwrap_err();
        assert!(e.contains("rank-2 input `(steps, channels)`"), "{e}");
        assert!(e.contains("`Reshape((7, 1))`"), "{e}");
        let e = shape(
            &KERAS1_KIND,
            quote!(Convolution1D(4, 3, input_dim = 8, input_length = 10)),
            &[8],
        )
        .unwrap_err();
        assert!(e.contains("write `input_shape = (10, 8)`"), "{e}");
        assert!(!e.contains("rank-2"), "{e}");
        let e = shape(
            &KERAS1_KIND,
            quote!(Convolution1D(4, 3, border_mode = "causal")),
            &[8, 2],
        )
        .unwrap_err();
        assert!(
            e.contains("Keras 3's `Conv1D(..., padding = \"causal\")`"),
            "{e}"
        );
    }
}
