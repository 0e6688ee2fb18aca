//! `GlobalMaxPooling1D/2D(data_format = None, keepdims = False)` and
//! `GlobalAveragePooling1D/2D(data_format = None, keepdims = False)`: the largest value or
//! the mean of each channel over all spatial positions.
//!
//! Shape rule: `(steps, features)` or `(height, width, channels)` (channels first when
//! declared so) -> `(channels,)`; with `keepdims = True` the spatial axes stay with extent 1:
//! `(1, channels)`, `(1, 1, channels)`, or `(channels, 1)`, `(channels, 1, 1)` channels
//! first. No weights.
//!
//! Masks (Keras 3 sets `supports_masking` on `GlobalAveragePooling1D` only): channels last,
//! `GlobalAveragePooling1D` averages the unmasked steps, `sum(where(mask, x, 0)) /
//! sum(mask)` (a sample with every step masked gives NaN, as in Keras), and its output has
//! no mask. Channels first it refuses a mask: Keras would apply the `(batch, features)` mask
//! of `Masking` along the steps axis (a broadcasting error, or the wrong axis). The other
//! three refuse a mask (Keras drops it).
//!
//! Backward pass: max splits each channel's gradient evenly among the positions holding the
//! maximum (JAX's gradient of `jnp.max`); average gives each unmasked position `dy / count`.
//! The generated code calls `kiln_runtime::layers::global_pooling::GlobalPooling`.

use super::pooling::{channels_first, spatial, Call, Kernel};
use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward};
use crate::args::{Bound, Errors, Signature};
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

const PARAMS: &[&str] = &["data_format", "keepdims"];

pub const GLOBAL_MAX_POOLING_1D: LayerKind = LayerKind {
    class: "GlobalMaxPooling1D",
    signature: Signature {
        params: PARAMS,
        required: 0,
    },
    build: |b, input| build(b, input, false, 1),
};

pub const GLOBAL_MAX_POOLING_2D: LayerKind = LayerKind {
    class: "GlobalMaxPooling2D",
    signature: Signature {
        params: PARAMS,
        required: 0,
    },
    build: |b, input| build(b, input, false, 2),
};

pub const GLOBAL_AVERAGE_POOLING_1D: LayerKind = LayerKind {
    class: "GlobalAveragePooling1D",
    signature: Signature {
        params: PARAMS,
        required: 0,
    },
    build: |b, input| build(b, input, true, 1),
};

pub const GLOBAL_AVERAGE_POOLING_2D: LayerKind = LayerKind {
    class: "GlobalAveragePooling2D",
    signature: Signature {
        params: PARAMS,
        required: 0,
    },
    build: |b, input| build(b, input, true, 2),
};

struct GlobalPooling {
    kernel: Kernel,
    /// `GlobalAveragePooling1D` channels last: the one that averages under a mask.
    uses_mask: bool,
    /// `GlobalAveragePooling1D` channels first.
    mask_on_wrong_axis: bool,
}

fn build(
    b: &Bound,
    input: &LayerInput,
    average: bool,
    dims: usize,
) -> Result<Box<dyn Layer>, Error> {
    let class = b.class();
    let mut errors = Errors::default();
    let first = errors.ok(channels_first(b));
    let keepdims = errors.ok(b.boolean("keepdims", false));
    let view = first.and_then(|first| errors.ok(spatial(b, input, dims, first)));
    errors.into_result()?;
    let (Some(first), Some(keepdims), Some(view)) = (first, keepdims, view) else {
        return Err(Error::new_spanned(
            &b.call.call,
            format!("invalid `{class}` arguments"),
        ));
    };
    let output = if keepdims {
        view.shape([1, 1])
    } else {
        Shape(vec![view.channels])
    };
    let mode = if average {
        quote!(::kiln::__private::layers::pooling::PoolMode::Average)
    } else {
        quote!(::kiln::__private::layers::pooling::PoolMode::Max)
    };
    let grid = view.grid();
    Ok(Box::new(GlobalPooling {
        kernel: Kernel {
            ty: quote!(::kiln::__private::layers::global_pooling::GlobalPooling),
            ctor: quote!(::kiln::__private::layers::global_pooling::GlobalPooling::new(#mode, #grid)),
            input: input.shape.clone(),
            output,
            call: Call::Masked,
        },
        uses_mask: average && dims == 1 && !first,
        mask_on_wrong_axis: average && dims == 1 && first,
    }))
}

impl Layer for GlobalPooling {
    fn output_shape(&self) -> Shape {
        self.kernel.output.clone()
    }

    fn mask_rule(&self) -> MaskRule {
        if self.uses_mask {
            MaskRule::Consume
        } else {
            MaskRule::Refuse
        }
    }

    fn mask_refusal(&self) -> Option<String> {
        self.mask_on_wrong_axis.then(|| {
            "with `data_format = \"channels_first\"`, Keras would apply that mask (one per feature here) along the steps axis".to_string()
        })
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        self.kernel
            .forward(f, f.mask.as_ref().filter(|_| self.uses_mask))
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        Some(
            self.kernel
                .forward_slices(f.mask.as_ref().filter(|_| self.uses_mask)),
        )
    }

    fn borrows_training_input(&self) -> bool {
        true
    }

    fn forward_train(&self, f: &Forward) -> TokenStream {
        self.kernel
            .forward_train(f.mask.as_ref().filter(|_| self.uses_mask))
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        Some(
            self.kernel
                .backward(b, b.mask.as_ref().filter(|_| self.uses_mask)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::output_shape_for_test;

    #[test]
    fn keepdims_keeps_spatial_axes_of_one() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        let shape = |kind, tokens, input: &[usize]| {
            output_shape_for_test(kind, tokens, input, "layer `dense`")
        };
        let m = quote!(M = Sequential([GlobalAveragePooling1D()]));
        assert_eq!(shape(&GLOBAL_AVERAGE_POOLING_1D, m, &[7, 3]), s(&[3]));
        let m = quote!(M = Sequential([GlobalMaxPooling1D(keepdims = True)]));
        assert_eq!(shape(&GLOBAL_MAX_POOLING_1D, m, &[7, 3]), s(&[1, 3]));
        let m = quote!(M = Sequential([GlobalMaxPooling2D("channels_first", True)]));
        assert_eq!(shape(&GLOBAL_MAX_POOLING_2D, m, &[4, 5, 6]), s(&[4, 1, 1]));
        let m = quote!(M = Sequential([GlobalAveragePooling2D(keepdims = False)]));
        assert_eq!(shape(&GLOBAL_AVERAGE_POOLING_2D, m, &[4, 5, 6]), s(&[6]));
        let m = quote!(M = Sequential([GlobalAveragePooling2D(keepdims = 1)]));
        let e = shape(&GLOBAL_AVERAGE_POOLING_2D, m, &[4, 5]).unwrap_err();
        assert!(
            e.contains("expected `True` or `False` for `keepdims`"),
            "{e}"
        );
        assert!(e.contains("expects a rank-3 input"), "{e}");
    }
}
