//! `UpSampling1D(size = 2)` and `UpSampling2D(size = (2, 2), data_format = None,
//! interpolation = "nearest")`: repeats each spatial position `size` times along each axis
//! (nearest-neighbour upsampling, Keras's `ops.repeat`).
//!
//! `size` is a positive integer (1D: an integer only, as Keras 3 requires; 2D: an integer
//! or `(rows, columns)`). `interpolation` must be `"nearest"` (any case, as Keras lowercases
//! it): Keras's image resizes (`"bilinear"`, `"bicubic"`, `"lanczos3"`, `"lanczos5"`) are
//! not in kiln. `UpSampling1D` has no `data_format`.
//!
//! Shape rule: `(steps, features)` -> `(steps * size, features)`; `(height, width,
//! channels)` -> `(height * rows, width * columns, channels)`; channels first when declared
//! so. No weights; refuses a mask (Keras drops it).
//!
//! The generated code calls `kiln_runtime::layers::upsampling::UpSampling`; its backward
//! pass sums the gradients of each value's copies.

use super::pooling::{channels_first, int_tuple, spatial, Call, Kernel};
use super::{Layer, LayerInput, LayerKind};
use crate::args::{Bound, Errors, Signature};
use crate::ast::Value;
use crate::shape::MAX_ELEMENTS;
use crate::suggest::did_you_mean;
use quote::quote;
use syn::Error;

pub const UP_SAMPLING_1D: LayerKind = LayerKind {
    class: "UpSampling1D",
    signature: Signature {
        params: &["size"],
        required: 0,
    },
    build: |b, input| build(b, input, 1),
};

pub const UP_SAMPLING_2D: LayerKind = LayerKind {
    class: "UpSampling2D",
    signature: Signature {
        params: &["size", "data_format", "interpolation"],
        required: 0,
    },
    build: |b, input| build(b, input, 2),
};

/// Keras 3's image resize methods besides `"nearest"`.
const RESIZES: &[&str] = &["bilinear", "bicubic", "lanczos3", "lanczos5"];

fn build(b: &Bound, input: &LayerInput, dims: usize) -> Result<Box<dyn Layer>, Error> {
    let class = b.class();
    let mut errors = Errors::default();
    let first = errors.ok(channels_first(b));
    let size = if dims == 1 {
        errors.ok(step_size(b)).map(|s| [1, s])
    } else {
        errors
            .ok(int_tuple(b, "size", 2, 1, false))
            .map(|s| match s.as_deref() {
                Some([h, w]) => [*h, *w],
                _ => [2, 2],
            })
    };
    errors.ok(interpolation(b));
    let view = first.and_then(|first| errors.ok(spatial(b, input, dims, first)));
    errors.into_result()?;
    let (Some(size), Some(view)) = (size, view) else {
        return Err(Error::new_spanned(
            &b.call.call,
            format!("invalid `{class}` arguments"),
        ));
    };
    let grid = view.grid();
    let [rows, cols] = size;
    // Each factor is at most 2^24 (checked) and so is each extent: the products fit, and
    // the checker refuses outputs above kiln's size limit.
    let output = view.shape([
        view.height.saturating_mul(rows),
        view.width.saturating_mul(cols),
    ]);
    Ok(Box::new(Kernel {
        ty: quote!(::kiln::__private::layers::upsampling::UpSampling),
        ctor: quote!(::kiln::__private::layers::upsampling::UpSampling::new(#grid, [#rows, #cols])),
        input: input.shape.clone(),
        output,
        call: Call::Plain,
    }))
}

/// `UpSampling1D`'s `size`: a positive integer (Keras 3 refuses tuples), 2 by default.
fn step_size(b: &Bound) -> Result<usize, Error> {
    let size = b.int_at_least("size", 1, 2)?;
    if size > MAX_ELEMENTS as i128 {
        if let Some(arg) = b.get("size") {
            return Err(Error::new_spanned(
                &arg.expr,
                format!("`size` of `{}` is too large, found `{size}`", b.class()),
            ));
        }
    }
    Ok(size as usize)
}

/// `interpolation`: only `"nearest"`, in any case.
fn interpolation(b: &Bound) -> Result<(), Error> {
    let Some(arg) = b.get("interpolation") else {
        return Ok(());
    };
    let class = b.class();
    match &arg.value {
        Value::Str(s) if s.eq_ignore_ascii_case("nearest") => Ok(()),
        Value::Str(s) if RESIZES.contains(&s.to_ascii_lowercase().as_str()) => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "`{class}` supports only `interpolation = \"nearest\"` in kiln, found the string `{s:?}`\n  note: Keras's image resizes ({}) are not implemented",
                RESIZES.iter().map(|r| format!("`\"{r}\"`")).collect::<Vec<_>>().join(", ")
            ),
        )),
        Value::Str(s) => {
            let hint = did_you_mean(s, ["nearest"].into_iter().chain(RESIZES.iter().copied()));
            Err(Error::new_spanned(
                &arg.expr,
                format!("unknown interpolation `{s:?}` for `{class}`{hint}\n  help: kiln supports `\"nearest\"`"),
            ))
        }
        other => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected `\"nearest\"` for `interpolation` of `{class}`, found {}",
                other.describe()
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

    fn up(kind: &LayerKind, tokens: TokenStream, input: &[usize]) -> Result<Shape, String> {
        output_shape_for_test(kind, tokens, input, "layer `dense`")
    }

    #[test]
    fn repeats_each_spatial_axis() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        assert_eq!(
            up(
                &UP_SAMPLING_1D,
                quote!(M = Sequential([UpSampling1D()])),
                &[3, 2]
            ),
            s(&[6, 2])
        );
        assert_eq!(
            up(
                &UP_SAMPLING_1D,
                quote!(M = Sequential([UpSampling1D(3)])),
                &[3, 2]
            ),
            s(&[9, 2])
        );
        let m = quote!(M = Sequential([UpSampling2D((1, 3), "channels_first", "Nearest")]));
        assert_eq!(up(&UP_SAMPLING_2D, m, &[2, 3, 4]), s(&[2, 3, 12]));
        assert_eq!(
            up(
                &UP_SAMPLING_2D,
                quote!(M = Sequential([UpSampling2D()])),
                &[2, 3, 4]
            ),
            s(&[4, 6, 4])
        );
    }

    #[test]
    fn only_nearest_interpolation_and_positive_sizes() {
        let m = quote!(M = Sequential([UpSampling2D(interpolation = "bilinear")]));
        let e = up(&UP_SAMPLING_2D, m, &[2, 3, 4]).unwrap_err();
        assert!(e.contains("`UpSampling2D` supports only `interpolation = \"nearest\"` in kiln, found the string `\"bilinear\"`"), "{e}");
        let m = quote!(M = Sequential([UpSampling2D(interpolation = "nearst")]));
        let e = up(&UP_SAMPLING_2D, m, &[2, 3, 4]).unwrap_err();
        assert!(e.contains("did you mean `nearest`"), "{e}");
        let m = quote!(M = Sequential([UpSampling1D((2,))]));
        let e = up(&UP_SAMPLING_1D, m, &[2, 3]).unwrap_err();
        assert!(
            e.contains("expected an integer for `size` of `UpSampling1D`, found a tuple"),
            "{e}"
        );
        let m = quote!(M = Sequential([UpSampling2D((0, 2))]));
        let e = up(&UP_SAMPLING_2D, m, &[2, 3, 4]).unwrap_err();
        assert!(
            e.contains(
                "each value in `size` of `UpSampling2D` must be a positive integer, found `0`"
            ),
            "{e}"
        );
    }
}
