//! `SeparableConv2D(filters, kernel_size, strides = (1, 1), padding = "valid",
//! data_format = None, dilation_rate = (1, 1), depth_multiplier = 1, activation = None,
//! use_bias = True, depthwise_initializer = "glorot_uniform",
//! pointwise_initializer = "glorot_uniform", bias_initializer = "zeros",
//! depthwise_regularizer = None, pointwise_regularizer = None, bias_regularizer = None,
//! activity_regularizer = None, depthwise_constraint = None, pointwise_constraint = None,
//! bias_constraint = None)`: a depthwise convolution (as `DepthwiseConv2D`, without bias),
//! then a 1 x 1 convolution to `filters` channels, plus bias, then the activation, as
//! Keras 3's `separable_conv` computes it.
//!
//! Shape rule: `(h, w, channels)` -> `(new_h, new_w, filters)` (channels first:
//! `(channels, h, w)` -> `(filters, new_h, new_w)`); sizes as `Conv2D`'s (`conv.rs`), with
//! `strides > 1` together with `dilation_rate > 1` allowed, as in `DepthwiseConv2D`. The
//! depthwise output `(new_h, new_w, channels * depth_multiplier)` must hold at most 2^24
//! values, as any tensor: training keeps it for the backward pass (`predict` does not).
//!
//! Weights: `depthwise_kernel` `(kh, kw, channels, depth_multiplier)`, `pointwise_kernel`
//! `(1, 1, channels * depth_multiplier, filters)`, `bias` `(filters,)`. A mask is refused.

use super::conv::{self, Form, Kernel, Spelling};
use super::{Layer, LayerInput, LayerKind};
use crate::args::{Bound, Signature};
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "SeparableConv2D",
    signature: Signature {
        params: &[
            "filters",
            "kernel_size",
            "strides",
            "padding",
            "data_format",
            "dilation_rate",
            "depth_multiplier",
            "activation",
            "use_bias",
            "depthwise_initializer",
            "pointwise_initializer",
            "bias_initializer",
            "depthwise_regularizer",
            "pointwise_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "depthwise_constraint",
            "pointwise_constraint",
            "bias_constraint",
        ],
        required: 2,
    },
    build,
};

const SPELLING: Spelling = Spelling {
    kernel: Kernel::Tuple("kernel_size"),
    groups: None,
    kernel_initializer: "depthwise_initializer",
    kernel_regularizer: "depthwise_regularizer",
    kernel_constraint: "depthwise_constraint",
    form: Form::Separable,
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
            "the model input",
        )
    }

    #[test]
    fn output_sizes_follow_keras() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        assert_eq!(
            shape(quote!(SeparableConv2D(5, 3)), &[6, 5, 3]),
            s(&[4, 3, 5])
        );
        assert_eq!(
            shape(
                quote!(SeparableConv2D(4, (3, 2), 2, "same", depth_multiplier = 2)),
                &[7, 6, 2]
            ),
            s(&[4, 3, 4])
        );
        assert_eq!(
            shape(
                quote!(SeparableConv2D(
                    3,
                    3,
                    dilation_rate = (2, 1),
                    data_format = "channels_first"
                )),
                &[2, 8, 5]
            ),
            s(&[3, 4, 3])
        );
    }

    #[test]
    fn every_rule_is_an_error_at_its_argument() {
        let e = shape(quote!(SeparableConv2D(4, 3, dilation_rate = 3)), &[6, 9, 2]).unwrap_err();
        assert!(e.contains("`SeparableConv2D` kernel height 3 dilated by 3 spans 7, which is larger than the height 6 of the model input (6, 9, 2)"), "{e}");
        let e = shape(
            quote!(SeparableConv2D(0, 3, depth_multiplier = -1, groups = 2)),
            &[6, 9, 2],
        )
        .unwrap_err();
        assert!(
            e.contains("`SeparableConv2D` has no argument `groups`"),
            "{e}"
        );
        let e = shape(
            quote!(SeparableConv2D(0, 3, depth_multiplier = -1)),
            &[6, 9, 2],
        )
        .unwrap_err();
        assert!(
            e.contains("`filters` of `SeparableConv2D` must be a positive integer"),
            "{e}"
        );
        assert!(
            e.contains(
                "`depth_multiplier` of `SeparableConv2D` must be a positive integer, found `-1`"
            ),
            "{e}"
        );
        // A small output whose depthwise output is too large.
        let e = shape(
            quote!(SeparableConv2D(1, 1, depth_multiplier = 4096)),
            &[64, 64, 2],
        )
        .unwrap_err();
        assert!(
            e.contains("the depthwise output (64, 64, 8192) of `SeparableConv2D` is too large"),
            "{e}"
        );
    }
}
