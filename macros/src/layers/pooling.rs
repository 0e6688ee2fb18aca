//! `MaxPooling1D(pool_size = 2, strides = None, padding = "valid", data_format = None)`,
//! `MaxPooling2D(pool_size = (2, 2), ...)`, `AveragePooling1D(pool_size, ...)` and
//! `AveragePooling2D(pool_size, ...)`: the largest value or the mean of each window.
//!
//! Keras 3's signatures: Max pooling defaults `pool_size` (2 or `(2, 2)`), average pooling
//! requires it. `pool_size` and `strides` are an integer or a tuple of one (1D) or two (2D)
//! positive integers; `strides = None` means `pool_size`. `padding` is exactly `"valid"` or
//! `"same"`, `data_format` `"channels_last"` (the default) or `"channels_first"`.
//!
//! Shape rule, per spatial axis of extent `n`, pool `k` and stride `s`: `"valid"` gives
//! `floor((n - k) / s) + 1` and needs `k <= n`; `"same"` gives `ceil(n / s)`, padding
//! `(out - 1) * s + k - n` split as half before (rounded down) and the rest after. Padding
//! never wins a max and is left out of a mean (Keras 3 / JAX). Inputs are `(steps,
//! features)` (1D) or `(height, width, channels)` (2D), channels first when so declared. No
//! weights; refuses a mask (Keras drops it).
//!
//! The generated code calls `kiln_runtime::layers::pooling::Pooling`, built in a `const`.
//! This file also holds what every spatial layer shares: the `data_format` argument, the
//! input's spatial view ([`Spatial`]), Keras's integer-or-tuple arguments ([`int_tuple`]) and
//! the code generation around a runtime kernel ([`Kernel`]).

use super::{Backward, Forward, Layer, LayerInput, LayerKind, SliceForward};
use crate::args::{Bound, Errors, Signature};
use crate::ast::{Arg, Value};
use crate::shape::{Shape, MAX_ELEMENTS};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

const PARAMS: &[&str] = &["pool_size", "strides", "padding", "data_format"];

pub const MAX_POOLING_1D: LayerKind = LayerKind {
    class: "MaxPooling1D",
    signature: Signature {
        params: PARAMS,
        required: 0,
    },
    build: |b, input| build(b, input, Reduce::Max, 1),
};

pub const MAX_POOLING_2D: LayerKind = LayerKind {
    class: "MaxPooling2D",
    signature: Signature {
        params: PARAMS,
        required: 0,
    },
    build: |b, input| build(b, input, Reduce::Max, 2),
};

pub const AVERAGE_POOLING_1D: LayerKind = LayerKind {
    class: "AveragePooling1D",
    signature: Signature {
        params: PARAMS,
        required: 1,
    },
    build: |b, input| build(b, input, Reduce::Average, 1),
};

pub const AVERAGE_POOLING_2D: LayerKind = LayerKind {
    class: "AveragePooling2D",
    signature: Signature {
        params: PARAMS,
        required: 1,
    },
    build: |b, input| build(b, input, Reduce::Average, 2),
};

/// Max or average, as the runtime's `PoolMode` is spelt in generated code.
#[derive(Clone, Copy)]
enum Reduce {
    Max,
    Average,
}

fn build(
    b: &Bound,
    input: &LayerInput,
    mode: Reduce,
    dims: usize,
) -> Result<Box<dyn Layer>, Error> {
    let class = b.class();
    let mut errors = Errors::default();
    let channels_first = errors.ok(channels_first(b));
    let pool = match errors.ok(int_tuple(b, "pool_size", dims, 1, false)) {
        // Max pooling's default; average pooling's `pool_size` is required (bound already).
        Some(None) => Some(vec![2; dims]),
        other => other.flatten(),
    };
    let strides = errors.ok(int_tuple(b, "strides", dims, 1, true));
    let same = errors.ok(padding_mode(b));
    let view = channels_first.and_then(|first| errors.ok(spatial(b, input, dims, first)));
    errors.into_result()?;
    let (Some(pool), Some(strides), Some(same), Some(view)) = (pool, strides, same, view) else {
        return Err(Error::new_spanned(
            &b.call.call,
            format!("invalid `{class}` arguments"),
        ));
    };
    let strides = strides.unwrap_or_else(|| pool.clone());
    let pool = view.pair(&pool);
    let strides = view.pair(&strides);

    let extents = view.extents();
    if !same && (pool[0] > extents[0] || pool[1] > extents[1]) {
        return Err(at_arg(
            b,
            "pool_size",
            format!(
                "`{class}` pool {} is larger than the {} of {}, so `padding = \"valid\"` leaves no output\n  help: use `padding = \"same\"`, or a pool of at most {}",
                view.text(pool),
                view.describe_extents(),
                input.phrase(),
                view.text(extents),
            ),
        ));
    }
    let out = [0, 1].map(|d| {
        if same {
            extents[d].div_ceil(strides[d])
        } else {
            (extents[d] - pool[d]) / strides[d] + 1
        }
    });
    Ok(Box::new(Kernel {
        ty: quote!(::kiln::__private::layers::pooling::Pooling),
        ctor: {
            let mode = match mode {
                Reduce::Max => quote!(::kiln::__private::layers::pooling::PoolMode::Max),
                Reduce::Average => {
                    quote!(::kiln::__private::layers::pooling::PoolMode::Average)
                }
            };
            let grid = view.grid();
            let ([p0, p1], [s0, s1]) = (pool, strides);
            quote!(::kiln::__private::layers::pooling::Pooling::new(#mode, #grid, [#p0, #p1], [#s0, #s1], #same))
        },
        input: input.shape.clone(),
        output: view.shape(out),
        call: Call::WithInput,
    }))
}

/// `padding`: `"valid"` (false) or `"same"` (true), exactly as Keras 3 spells them.
fn padding_mode(b: &Bound) -> Result<bool, Error> {
    let Some(arg) = b.get("padding") else {
        return Ok(false);
    };
    match &arg.value {
        Value::Str(s) if s == "valid" => Ok(false),
        Value::Str(s) if s == "same" => Ok(true),
        Value::Str(s) if s.eq_ignore_ascii_case("valid") || s.eq_ignore_ascii_case("same") => {
            Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected `\"valid\"` or `\"same\"` for `padding` of `{}`, found the string `{s:?}`\n  help: Keras 3 spells them in lowercase: `\"{}\"`",
                    b.class(),
                    s.to_ascii_lowercase()
                ),
            ))
        }
        other => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected `\"valid\"` or `\"same\"` for `padding` of `{}`, found {}",
                b.class(),
                other.describe()
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Shared by the spatial layers (pooling, global pooling, padding, cropping, upsampling).
// ---------------------------------------------------------------------------------------

/// An error at argument `name` when it is given, else at the layer (a default broke a rule).
pub(super) fn at_arg(b: &Bound, name: &str, message: String) -> Error {
    match b.get(name) {
        Some(arg) => Error::new_spanned(&arg.expr, message),
        None => Error::new(b.call.class.span(), message),
    }
}

/// `data_format`: whether the channels come first. Keras 3 lowercases the string and reads
/// `None` as its configured default, `"channels_last"` out of the box.
pub(super) fn channels_first(b: &Bound) -> Result<bool, Error> {
    let Some(arg) = b.get("data_format") else {
        return Ok(false);
    };
    match &arg.value {
        Value::None => Ok(false),
        Value::Str(s) if s.eq_ignore_ascii_case("channels_last") => Ok(false),
        Value::Str(s) if s.eq_ignore_ascii_case("channels_first") => Ok(true),
        other => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected `\"channels_last\"` or `\"channels_first\"` for `data_format` of `{}`, found {}",
                b.class(),
                other.describe()
            ),
        )),
    }
}

/// A spatial layer's view of its input: 1D `(steps, features)` or 2D `(height, width,
/// channels)`, channels first when declared so. 1D data is a grid of height 1.
pub(super) struct Spatial {
    pub dims: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub channels_first: bool,
}

/// Checks that the input has a spatial layer's rank (`dims + 1`) and reads its view.
pub(super) fn spatial(
    b: &Bound,
    input: &LayerInput,
    dims: usize,
    channels_first: bool,
) -> Result<Spatial, Error> {
    let class = b.class();
    let shape = &input.shape.0;
    let rank = shape.len();
    if rank != dims + 1 {
        let expected = match (dims, channels_first) {
            (1, false) => "(steps, features)",
            (1, true) => "(features, steps)",
            (_, false) => "(height, width, channels)",
            (_, true) => "(channels, height, width)",
        };
        let help = if rank == dims {
            // One axis short: the usual fix is a channel axis of 1.
            let mut with_channel: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            if channels_first {
                with_channel.insert(0, "1".into());
            } else {
                with_channel.push("1".into());
            }
            format!(
                "\n  help: `Reshape(({}))` before it gives the input one {}",
                with_channel.join(", "),
                if dims == 1 { "feature" } else { "channel" }
            )
        } else if dims == 1 && rank == 3 {
            format!(
                "\n  help: for rank-3 inputs `(height, width, channels)`, use `{}`",
                class.replace("1D", "2D")
            )
        } else if dims == 2 && rank == 2 && class.ends_with("2D") {
            format!(
                "\n  help: for rank-2 inputs `(steps, features)`, use `{}`",
                class.replace("2D", "1D")
            )
        } else {
            String::new()
        };
        return Err(Error::new(
            b.call.class.span(),
            format!(
                "`{class}` expects a rank-{} input `{expected}`, but {} has rank {rank}{help}",
                dims + 1,
                input.phrase()
            ),
        ));
    }
    let (channels, space) = if channels_first {
        (shape[0], &shape[1..])
    } else {
        (shape[rank - 1], &shape[..rank - 1])
    };
    let (height, width) = match space {
        [w] => (1, *w),
        [h, w] => (*h, *w),
        _ => (1, 1),
    };
    Ok(Spatial {
        dims,
        height,
        width,
        channels,
        channels_first,
    })
}

impl Spatial {
    /// `[height, width]` (height 1 for 1D).
    pub fn extents(&self) -> [usize; 2] {
        [self.height, self.width]
    }

    /// A 1D argument `(k,)` as `[1, k]`; a 2D one as is.
    pub fn pair(&self, values: &[usize]) -> [usize; 2] {
        match values {
            [k] => [1, *k],
            [h, w, ..] => [*h, *w],
            [] => [1, 1],
        }
    }

    /// `3` for 1D, `(3, 3)` for 2D.
    pub fn text(&self, pair: [usize; 2]) -> String {
        if self.dims == 1 {
            pair[1].to_string()
        } else {
            format!("({}, {})", pair[0], pair[1])
        }
    }

    /// "2 steps" or "(2, 5) image".
    pub fn describe_extents(&self) -> String {
        if self.dims == 1 {
            format!(
                "{} step{}",
                self.width,
                if self.width == 1 { "" } else { "s" }
            )
        } else {
            format!("({}, {}) image", self.height, self.width)
        }
    }

    /// The Keras shape of a tensor with this view's channels and layout and the extents
    /// `[height, width]`.
    pub fn shape(&self, extents: [usize; 2]) -> Shape {
        let mut dims = if self.dims == 1 {
            vec![extents[1]]
        } else {
            extents.to_vec()
        };
        if self.channels_first {
            dims.insert(0, self.channels);
        } else {
            dims.push(self.channels);
        }
        Shape(dims)
    }

    /// The runtime `Grid` of the input, as a constant expression.
    pub fn grid(&self) -> TokenStream {
        let (h, w, c, first) = (self.height, self.width, self.channels, self.channels_first);
        quote!(::kiln::__private::layers::pooling::Grid::new(#h, #w, #c, #first))
    }
}

/// Keras's `standardize_tuple`: an integer (repeated `n` times) or a tuple or list of `n`
/// integers, each at least `min` (and at most [`MAX_ELEMENTS`]); `None` when absent, or
/// when it is `None` and `none_means_default`.
pub(super) fn int_tuple(
    b: &Bound,
    name: &str,
    n: usize,
    min: i128,
    none_means_default: bool,
) -> Result<Option<Vec<usize>>, Error> {
    match b.get(name) {
        None => Ok(None),
        Some(arg) if none_means_default && matches!(arg.value, Value::None) => Ok(None),
        Some(arg) => ints(arg, name, &b.class(), n, min).map(Some),
    }
}

/// [`int_tuple`] on one argument value (also an entry of a nested tuple).
pub(super) fn ints(
    arg: &Arg,
    name: &str,
    class: &str,
    n: usize,
    min: i128,
) -> Result<Vec<usize>, Error> {
    let wanted = if min >= 1 {
        "a positive integer"
    } else {
        "a non-negative integer"
    };
    let shape = if n == 1 {
        "an integer".to_string()
    } else {
        format!("an integer or a tuple of {n} integers")
    };
    let one = |item: &Arg, nested: bool| -> Result<usize, Error> {
        let Value::Int(v) = item.value else {
            let wording = if nested {
                format!(
                    "expected an integer in `{name}` of `{class}`, found {}",
                    item.value.describe()
                )
            } else {
                format!(
                    "expected {shape} for `{name}` of `{class}`, found {}",
                    item.value.describe()
                )
            };
            return Err(Error::new_spanned(&item.expr, wording));
        };
        if v < min {
            let place = if nested { "each value in " } else { "" };
            return Err(Error::new_spanned(
                &item.expr,
                format!("{place}`{name}` of `{class}` must be {wanted}, found `{v}`"),
            ));
        }
        if v > MAX_ELEMENTS as i128 {
            return Err(Error::new_spanned(
                &item.expr,
                format!("`{name}` of `{class}` is too large, found `{v}`"),
            ));
        }
        Ok(v as usize)
    };
    match &arg.value {
        Value::Tuple(items) | Value::List(items) => {
            if items.len() != n {
                return Err(Error::new_spanned(
                    &arg.expr,
                    format!(
                        "expected {shape} for `{name}` of `{class}`, found {} with {} {}",
                        arg.value.describe(),
                        items.len(),
                        if items.len() == 1 { "entry" } else { "entries" }
                    ),
                ));
            }
            let mut errors = Errors::default();
            let values: Vec<usize> = items
                .iter()
                .filter_map(|i| errors.ok(one(i, true)))
                .collect();
            errors.into_result()?;
            Ok(values)
        }
        _ => one(arg, false).map(|v| vec![v; n]),
    }
}

/// How a runtime kernel's methods are called.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// `forward(x, y)`, `backward(dy, dx)`.
    Plain,
    /// `forward(x, y)`, `backward(x, dy, dx)`: the backward pass reads the input.
    WithInput,
    /// `forward(x, mask, y)`, `backward(x, mask, dy, dx)` (global pooling).
    Masked,
}

/// A spatial layer's generated code: a runtime kernel value built in a `const` from the
/// constant expression `ctor`, whose `forward` writes a new tensor of `output`'s shape and
/// whose `backward` writes the input's gradient. Every tensor in training comes from the
/// step's pool and goes back to it. Without a mask it is the layer itself (pooling,
/// padding, cropping, upsampling); global pooling wraps it to pass its mask.
pub(super) struct Kernel {
    pub ty: TokenStream,
    pub ctor: TokenStream,
    pub input: Shape,
    pub output: Shape,
    pub call: Call,
}

impl Kernel {
    fn mask_arg(&self, mask: Option<&TokenStream>) -> TokenStream {
        match (self.call, mask) {
            (Call::Masked, Some(m)) => quote!(::core::option::Option::Some(&#m[..]),),
            (Call::Masked, None) => quote!(::core::option::Option::None,),
            _ => quote!(),
        }
    }

    /// `predict`'s code, on a sample or a batch: a new tensor (on the stack for a sample).
    pub fn forward(&self, f: &Forward, mask: Option<&TokenStream>) -> TokenStream {
        let (ty, ctor) = (&self.ty, &self.ctor);
        let in_ty = self.input.tensor_type(f.mode);
        let (rows, cols, in_len) = (
            self.output.last(),
            self.output.positions(),
            self.input.len(),
        );
        let mask = self.mask_arg(mask);
        quote!({
            const LAYER: #ty = #ctor;
            let mut y = <#in_ty as ::kiln::__private::Tensor>::zeros_shaped::<#rows, #cols>(
                ::kiln::__private::Tensor::values(&x).len() / #in_len,
            );
            LAYER.forward(
                ::kiln::__private::Tensor::values(&x),
                #mask
                ::kiln::__private::Tensor::values_mut(&mut y),
            );
            y
        })
    }

    /// `predict_into`'s code: the kernel straight from the input slice into the output's.
    pub fn forward_slices(&self, mask: Option<&TokenStream>) -> SliceForward {
        let (ty, ctor) = (&self.ty, &self.ctor);
        let mask = self.mask_arg(mask);
        SliceForward::Map(quote!({
            const LAYER: #ty = #ctor;
            LAYER.forward(x, #mask y);
        }))
    }

    /// Training's forward code: `x` is borrowed, the output comes from the pool.
    pub fn forward_train(&self, mask: Option<&TokenStream>) -> TokenStream {
        let (ty, ctor) = (&self.ty, &self.ctor);
        let (rows, cols, in_len) = (
            self.output.last(),
            self.output.positions(),
            self.input.len(),
        );
        let mask = self.mask_arg(mask);
        quote!({
            const LAYER: #ty = #ctor;
            let mut y = pass.pool.take_to_overwrite::<#rows>(x.len() / #in_len * #cols);
            LAYER.forward(x.as_slice(), #mask y.as_mut_slice());
            (y, ())
        })
    }

    /// The backward code: the input gradient in a pooled tensor; `dy` goes back to the pool.
    pub fn backward(&self, b: &Backward, mask: Option<&TokenStream>) -> TokenStream {
        if !b.need_input_grad {
            return quote!({
                pass.pool.give(dy);
            });
        }
        let (ty, ctor) = (&self.ty, &self.ctor);
        let (rows, cols, out_len) = (self.input.last(), self.input.positions(), self.output.len());
        let mask = self.mask_arg(mask);
        let x = match self.call {
            Call::Plain => quote!(),
            Call::WithInput | Call::Masked => quote!(x.as_slice(),),
        };
        quote!({
            const LAYER: #ty = #ctor;
            let mut dx = pass.pool.take_to_overwrite::<#rows>(dy.len() / #out_len * #cols);
            LAYER.backward(#x #mask dy.as_slice(), dx.as_mut_slice());
            pass.pool.give(dy);
            dx
        })
    }
}

impl Layer for Kernel {
    fn output_shape(&self) -> Shape {
        self.output.clone()
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        Kernel::forward(self, f, None)
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        Some(Kernel::forward_slices(self, None))
    }

    fn borrows_training_input(&self) -> bool {
        true
    }

    fn forward_train(&self, _f: &Forward) -> TokenStream {
        Kernel::forward_train(self, None)
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        Some(Kernel::backward(self, b, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::output_shape_for_test;

    fn pool(kind: &LayerKind, tokens: TokenStream, input: &[usize]) -> Result<Shape, String> {
        output_shape_for_test(kind, tokens, input, "layer `dense`")
    }

    #[test]
    fn output_sizes_follow_keras() {
        let s = |d: &[usize]| Ok(Shape(d.to_vec()));
        let m = quote!(M = Sequential([MaxPooling1D()]));
        assert_eq!(pool(&MAX_POOLING_1D, m, &[7, 3]), s(&[3, 3]));
        let m = quote!(M = Sequential([MaxPooling1D(3, strides = 1, padding = "same")]));
        assert_eq!(pool(&MAX_POOLING_1D, m, &[7, 3]), s(&[7, 3]));
        let m = quote!(M = Sequential([AveragePooling1D(2, 3, "same", "channels_first")]));
        assert_eq!(pool(&AVERAGE_POOLING_1D, m, &[4, 7]), s(&[4, 3]));
        let m = quote!(M = Sequential([MaxPooling2D()]));
        assert_eq!(pool(&MAX_POOLING_2D, m, &[5, 6, 2]), s(&[2, 3, 2]));
        let m = quote!(M = Sequential([AveragePooling2D((3, 2), strides = (1, 2))]));
        assert_eq!(pool(&AVERAGE_POOLING_2D, m, &[5, 6, 2]), s(&[3, 3, 2]));
        let m = quote!(
            M = Sequential([MaxPooling2D(
                pool_size = [2, 3],
                padding = "same",
                data_format = "channels_first"
            )])
        );
        assert_eq!(pool(&MAX_POOLING_2D, m, &[2, 5, 7]), s(&[2, 3, 3]));
    }

    #[test]
    fn a_valid_pool_larger_than_the_input_is_refused() {
        let m = quote!(M = Sequential([MaxPooling1D(3)]));
        let e = pool(&MAX_POOLING_1D, m, &[2, 4]).unwrap_err();
        assert!(
            e.contains("`MaxPooling1D` pool 3 is larger than the 2 steps of its input (2, 4) from layer `dense`"),
            "{e}"
        );
        assert!(
            e.contains("help: use `padding = \"same\"`, or a pool of at most 2"),
            "{e}"
        );
        let m = quote!(M = Sequential([MaxPooling2D((2, 4), padding = "same")]));
        assert!(pool(&MAX_POOLING_2D, m, &[3, 3, 1]).is_ok());
    }

    #[test]
    fn arguments_and_ranks_are_checked_together() {
        let m = quote!(
            M = Sequential([AveragePooling2D(
                (2, 0, 1),
                strides = -1,
                padding = "SAME",
                data_format = "nchw"
            )])
        );
        let e = pool(&AVERAGE_POOLING_2D, m, &[4, 4]).unwrap_err();
        assert!(e.contains("expected an integer or a tuple of 2 integers for `pool_size` of `AveragePooling2D`, found a tuple with 3 entries"), "{e}");
        assert!(
            e.contains("`strides` of `AveragePooling2D` must be a positive integer, found `-1`"),
            "{e}"
        );
        assert!(
            e.contains("Keras 3 spells them in lowercase: `\"same\"`"),
            "{e}"
        );
        assert!(
            e.contains("for `data_format` of `AveragePooling2D`, found the string `\"nchw\"`"),
            "{e}"
        );
        let m = quote!(M = Sequential([MaxPooling2D()]));
        let e = pool(&MAX_POOLING_2D, m, &[4, 4]).unwrap_err();
        assert!(e.contains("`MaxPooling2D` expects a rank-3 input `(height, width, channels)`, but its input (4, 4) from layer `dense` has rank 2"), "{e}");
        assert!(e.contains("`Reshape((4, 4, 1))`"), "{e}");
        let m = quote!(M = Sequential([MaxPooling1D(data_format = "channels_first")]));
        let e = pool(&MAX_POOLING_1D, m, &[8]).unwrap_err();
        assert!(e.contains("rank-2 input `(features, steps)`"), "{e}");
        assert!(e.contains("`Reshape((1, 8))`"), "{e}");
    }
}
