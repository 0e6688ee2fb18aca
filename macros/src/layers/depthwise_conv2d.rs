//! `DepthwiseConv2D(kernel_size, strides = (1, 1), padding = "valid", depth_multiplier = 1,
//! data_format = None, dilation_rate = (1, 1), activation = None, use_bias = True,
//! depthwise_initializer = "glorot_uniform", bias_initializer = "zeros",
//! depthwise_regularizer = None, bias_regularizer = None, activity_regularizer = None,
//! depthwise_constraint = None, bias_constraint = None)`: each input channel convolved with
//! its own `depth_multiplier` filters, plus bias, then the activation, as Keras 3 computes it
//! (`depthwise_conv`: a grouped convolution with one group per channel).
//!
//! Shape rule: `(h, w, channels)` -> `(new_h, new_w, channels * depth_multiplier)` (channels
//! first: `(channels, h, w)` -> `(channels * depth_multiplier, new_h, new_w)`); sizes as
//! `Conv2D`'s (`conv.rs`), but `strides > 1` together with `dilation_rate > 1` is allowed:
//! Keras 3's depthwise constructor does not refuse it and JAX computes it. Output channel
//! `c * depth_multiplier + j` is channel `c`'s `j`-th filter.
//!
//! Weights: `kernel` `(kh, kw, channels, depth_multiplier)` (Keras 3 names it `kernel`, not
//! Keras 2's `depthwise_kernel`), `bias` `(channels * depth_multiplier,)`. A mask is refused.

use super::conv::{self, Form, Kernel, Spelling};
use super::{Layer, LayerInput, LayerKind};
use crate::args::{Bound, Signature};
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "DepthwiseConv2D",
    signature: Signature {
        params: &[
            "kernel_size",
            "strides",
            "padding",
            "depth_multiplier",
            "data_format",
            "dilation_rate",
            "activation",
            "use_bias",
            "depthwise_initializer",
            "bias_initializer",
            "depthwise_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "depthwise_constraint",
            "bias_constraint",
        ],
        required: 1,
    },
    build,
};

const SPELLING: Spelling = Spelling {
    filters: "",
    kernel: Kernel::Tuple("kernel_size"),
    groups: None,
    kernel_initializer: "depthwise_initializer",
    kernel_regularizer: "depthwise_regularizer",
    kernel_constraint: "depthwise_constraint",
    form: Form::Depthwise,
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

    #[test]
    fn output_sizes_follow_keras() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        assert_eq!(shape(quote!(DepthwiseConv2D(3)), &[6, 5, 3]), s(&[4, 3, 3]));
        assert_eq!(
            shape(quote!(DepthwiseConv2D((3, 2), 2, "same", 2)), &[7, 6, 2]),
            s(&[4, 3, 4])
        );
        // Strides with dilation, as Keras 3 on JAX: floor((7 - 5) / 2) + 1 = 2.
        assert_eq!(
            shape(
                quote!(DepthwiseConv2D(3, strides = 2, dilation_rate = 2)),
                &[7, 7, 3]
            ),
            s(&[2, 2, 3])
        );
        assert_eq!(
            shape(
                quote!(DepthwiseConv2D(
                    2,
                    depth_multiplier = 3,
                    data_format = "channels_first"
                )),
                &[2, 5, 4]
            ),
            s(&[6, 4, 3])
        );
    }

    #[test]
    fn every_rule_is_an_error_at_its_argument() {
        let e = shape(quote!(DepthwiseConv2D(5)), &[4, 6, 3]).unwrap_err();
        assert!(e.contains("`DepthwiseConv2D` kernel height 5 is larger than the height 4 of its input (4, 6, 3) from layer `dense`"), "{e}");
        let e = shape(quote!(DepthwiseConv2D(3, depth_multiplier = 0)), &[4, 6, 3]).unwrap_err();
        assert!(
            e.contains(
                "`depth_multiplier` of `DepthwiseConv2D` must be a positive integer, found `0`"
            ),
            "{e}"
        );
        let e = shape(
            quote!(DepthwiseConv2D(3, depth_multiplier = 16777217)),
            &[4, 6, 3],
        )
        .unwrap_err();
        assert!(e.contains("must be at most 16777216"), "{e}");
        let e = shape(quote!(DepthwiseConv2D(3, padding = "causal")), &[4, 6, 3]).unwrap_err();
        assert!(e.contains("is only for `Conv1D`"), "{e}");
        let e = shape(quote!(DepthwiseConv2D(3)), &[8, 8]).unwrap_err();
        assert!(
            e.contains("`DepthwiseConv2D` expects a rank-3 input"),
            "{e}"
        );
    }

    /// Extreme values are errors (or huge but exact shapes), never an overflow panic.
    #[test]
    fn extreme_values_never_panic() {
        for layer in [
            quote!(DepthwiseConv2D(
                16777216,
                depth_multiplier = 16777216,
                padding = "same"
            )),
            quote!(DepthwiseConv2D(
                (16777216, 1),
                strides = 16777216,
                dilation_rate = 16777216
            )),
            quote!(DepthwiseConv2D(0, depth_multiplier = 100000000000000000000)),
            quote!(DepthwiseConv2D(3, depth_multiplier = 2.5, data_format = 1)),
        ] {
            for input in [&[1 << 24, 1 << 24, 1 << 24][..], &[1, 1, 1], &[3, 4]] {
                let _ = shape(layer.clone(), input);
            }
        }
    }
}
