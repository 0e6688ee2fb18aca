//! What the convolutions share — `Conv1D` and `Conv2D` (and Keras 1's `Convolution1D`,
//! `Convolution2D`), `DepthwiseConv2D`, `SeparableConv2D`, `Conv2DTranspose`: reading the
//! arguments under each spelling ([`Spelling`], [`Form`]), Keras 3's shape rules, and the
//! code generation (a `kiln::layers::Conv` kernel call, or `SeparableConv` /
//! `ConvTranspose`, both built on it, then the activation, as Dense does). `conv1d.rs`,
//! `conv2d.rs`, `depthwise_conv2d.rs`, `separable_conv2d.rs` and `conv2d_transpose.rs` hold
//! the layer kinds.
//!
//! Shape rule along each spatial axis of size `n`, for a kernel of size `k`, dilation `d`
//! (its span is `e = (k - 1) * d + 1`) and stride `s`, as Keras 3's
//! `compute_conv_output_shape` and JAX's `SAME` padding compute it:
//! - `valid`: `floor((n - e) / s) + 1`, an error when `e > n` (the output would be empty);
//! - `same`: `ceil(n / s)`, padded with `max((out - 1) * s + e - n, 0)` zeros, half of them
//!   (rounded down) before and the rest after;
//! - `causal` (`Conv1D` only): `ceil(n / s)`, with `e - 1` zeros before.
//!
//! `Conv2DTranspose` grows each axis instead (see `transposed_axis`).
//!
//! Checks, each a spanned error: positive `filters`, `kernel_size`, `strides`,
//! `dilation_rate`, `groups` and `depth_multiplier`; `kernel_size` etc. an integer or a tuple
//! of one value per spatial axis; not `strides > 1` together with `dilation_rate > 1` (Keras 3
//! refuses it for `Conv*` and `Conv2DTranspose`, not for the depthwise and separable ones);
//! `groups` dividing both `filters` and the input's channels; `output_padding` from 0 to
//! below the stride, and a transposed output that is not empty; the input of rank 2
//! (`Conv1D`) or 3 (the 2-D ones) per sample.

use super::{Backward, Forward, Layer, LayerInput, SliceForward, Weight};
use crate::activations::{self, Resolved};
use crate::args::{Bound, Errors};
use crate::ast::{Arg, Value};
use crate::shape::{Mode, Shape, MAX_ELEMENTS};
use crate::suggest::did_you_mean;
use crate::{constraints, initializers, regularizers};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

/// Where a spelling keeps each argument: Keras 3's names, or Keras 1's.
pub struct Spelling {
    /// 1 (`Conv1D`) or 2 (`Conv2D`).
    pub rank: usize,
    pub filters: &'static str,
    /// One tuple-or-integer argument (`kernel_size`), or one integer per axis (Keras 1's
    /// `nb_row`, `nb_col`; `filter_length`).
    pub kernel: Kernel,
    pub strides: &'static str,
    pub padding: &'static str,
    /// Whether `padding = "causal"` is allowed (`Conv1D`).
    pub causal: bool,
    /// `data_format`, or Keras 1's `dim_ordering` (`"th"` / `"tf"`), which Keras 2 renamed.
    pub data_format: Option<&'static str>,
    pub dim_ordering: Option<&'static str>,
    pub dilation_rate: Option<&'static str>,
    pub groups: Option<&'static str>,
    pub kernel_initializer: &'static str,
    pub bias_initializer: Option<&'static str>,
    pub use_bias: &'static str,
    pub kernel_regularizer: &'static str,
    pub bias_regularizer: &'static str,
    pub kernel_constraint: &'static str,
    pub bias_constraint: &'static str,
    /// Keras 1's class: `weights` and `input_length` get errors pointing to kiln's ways.
    pub keras1: bool,
    /// Which convolution: the kernel arguments above are the first kernel's.
    pub form: Form,
}

/// Which convolution a spelling builds. The arguments only one form has keep Keras 3's
/// names: `depth_multiplier`, `pointwise_initializer` / `_regularizer` / `_constraint`,
/// `output_padding`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `Conv1D`, `Conv2D`: kernel `(k.., channels / groups, filters)`.
    Conv,
    /// `DepthwiseConv2D`: `channels * depth_multiplier` filters, each seeing one input
    /// channel; kernel `(kh, kw, channels, depth_multiplier)`. `Spelling::filters` is unused.
    Depthwise,
    /// `SeparableConv2D`: a depthwise convolution (`depthwise_kernel`, no bias) then a
    /// 1 x 1 one (`pointwise_kernel` `(1, 1, channels * depth_multiplier, filters)`, `bias`).
    Separable,
    /// `Conv2DTranspose`: kernel `(kh, kw, filters, channels)`; sizes grow by the strides
    /// (see `transposed_axis`).
    Transpose,
}

pub enum Kernel {
    Tuple(&'static str),
    PerAxis(&'static [&'static str]),
}

/// Keras 3's arguments, in Keras's order: the signature of `Conv1D` and `Conv2D`.
pub const KERAS3_PARAMS: &[&str] = &[
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "groups",
    "activation",
    "use_bias",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
];

/// Keras 3's spelling for a convolution of `rank`.
pub const fn keras3(rank: usize) -> Spelling {
    Spelling {
        rank,
        filters: "filters",
        kernel: Kernel::Tuple("kernel_size"),
        strides: "strides",
        padding: "padding",
        causal: rank == 1,
        data_format: Some("data_format"),
        dim_ordering: None,
        dilation_rate: Some("dilation_rate"),
        groups: Some("groups"),
        kernel_initializer: "kernel_initializer",
        bias_initializer: Some("bias_initializer"),
        use_bias: "use_bias",
        kernel_regularizer: "kernel_regularizer",
        bias_regularizer: "bias_regularizer",
        kernel_constraint: "kernel_constraint",
        bias_constraint: "bias_constraint",
        keras1: false,
        form: Form::Conv,
    }
}

/// The largest kernel size, stride or dilation accepted: no input axis is longer.
const LIMIT: i128 = MAX_ELEMENTS as i128;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Padding {
    Valid,
    Same,
    Causal,
}

/// The runtime kernel's `Geometry`, resolved.
struct Geometry {
    rank: usize,
    input: [usize; 2],
    channels: usize,
    output: [usize; 2],
    filters: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    dilation: [usize; 2],
    padding: [usize; 2],
    groups: usize,
    channels_first: bool,
    depthwise: bool,
}

impl Geometry {
    fn tokens(&self) -> TokenStream {
        let Geometry {
            rank,
            channels,
            filters,
            groups,
            channels_first,
            depthwise,
            ..
        } = *self;
        let pair = |a: [usize; 2]| {
            let (x, y) = (a[0], a[1]);
            quote!([#x, #y])
        };
        let (input, output, kernel) = (pair(self.input), pair(self.output), pair(self.kernel));
        let (strides, dilation, padding) =
            (pair(self.strides), pair(self.dilation), pair(self.padding));
        quote!(::kiln::__private::layers::conv::Geometry {
            rank: #rank,
            input: #input,
            channels: #channels,
            output: #output,
            filters: #filters,
            kernel: #kernel,
            strides: #strides,
            dilation: #dilation,
            padding: #padding,
            groups: #groups,
            channels_first: #channels_first,
            depthwise: #depthwise,
        })
    }
}

struct Conv {
    form: Form,
    geometry: Geometry,
    input: Shape,
    output: Shape,
    kernel_shape: Shape,
    activation: Resolved,
    use_bias: bool,
    kernel_initializer: TokenStream,
    bias_initializer: TokenStream,
    kernel_regularizer: Option<TokenStream>,
    bias_regularizer: Option<TokenStream>,
    activity_regularizer: Option<TokenStream>,
    kernel_constraint: Option<TokenStream>,
    bias_constraint: Option<TokenStream>,
    /// `SeparableConv2D`'s second convolution.
    pointwise: Option<Pointwise>,
}

/// `SeparableConv2D`'s 1 x 1 convolution over the depthwise output (`middle`).
struct Pointwise {
    filters: usize,
    middle: Shape,
    initializer: TokenStream,
    regularizer: Option<TokenStream>,
    constraint: Option<TokenStream>,
}

/// An initializer argument, or `default` when absent.
fn initializer(b: &Bound, name: Option<&str>, default: &str) -> Result<TokenStream, Error> {
    match name.and_then(|n| b.get(n)) {
        Some(arg) => initializers::resolve(arg),
        None => initializers::resolve(&Arg {
            keyword: None,
            value: Value::Str(default.into()),
            expr: syn::parse_quote!(#default),
        }),
    }
}

/// Builds a convolution layer spelt `s` from its bound arguments and input.
pub fn build(b: &Bound, input: &LayerInput, s: &Spelling) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    if s.keras1 {
        keras1_only(b, &mut errors);
    }
    // A depthwise convolution's filters are `channels * depth_multiplier`, set below.
    let filters = match s.form {
        Form::Depthwise => Some(1),
        _ => errors.ok(b.positive(s.filters)),
    };
    let multiplier = match s.form {
        Form::Depthwise | Form::Separable => errors.ok(at_most_limit(b, "depth_multiplier")),
        _ => Some(1),
    };
    let kernel = errors.ok(kernel_size(b, s));
    let strides = errors.ok(spatial(b, Some(s.strides), s.rank));
    let dilation = errors.ok(spatial(b, s.dilation_rate, s.rank));
    let groups = match s.groups {
        Some(name) if b.get(name).is_some() => errors.ok(b.positive(name)),
        _ => Some(1),
    };
    let padding = errors.ok(padding(b, s));
    let channels_first = errors.ok(channels_first(b, s));
    let activation = match b.get("activation") {
        Some(arg) => errors.ok(activations::resolve(arg)),
        None => Some(Resolved::linear()),
    };
    let use_bias = errors.ok(b.boolean(s.use_bias, true));
    let kernel_initializer =
        errors.ok(initializer(b, Some(s.kernel_initializer), "glorot_uniform"));
    let bias_initializer = errors.ok(initializer(b, s.bias_initializer, "zeros"));
    let separable = s.form == Form::Separable;
    let pointwise_initializer = if separable {
        errors.ok(initializer(
            b,
            Some("pointwise_initializer"),
            "glorot_uniform",
        ))
    } else {
        Some(TokenStream::new())
    };
    let mut regularizer = |name: &str| {
        b.get(name)
            .and_then(|arg| errors.ok(regularizers::resolve(arg)))
            .flatten()
    };
    let kernel_regularizer = regularizer(s.kernel_regularizer);
    let bias_regularizer = regularizer(s.bias_regularizer);
    let activity_regularizer = regularizer("activity_regularizer");
    let pointwise_regularizer = regularizer("pointwise_regularizer");
    let mut constraint = |name: &str, rank: usize| {
        b.get(name)
            .and_then(|arg| errors.ok(constraints::resolve(arg, rank)))
            .flatten()
    };
    let kernel_constraint = constraint(s.kernel_constraint, s.rank + 2);
    let bias_constraint = constraint(s.bias_constraint, 1);
    let pointwise_constraint = constraint("pointwise_constraint", s.rank + 2);
    let output_padding = match s.form {
        Form::Transpose => errors.ok(spatial_from(b, Some("output_padding"), s.rank, 0)),
        _ => Some(([0, 0], None)),
    };

    // Keras 3's `Conv` and `ConvTranspose` constructors refuse `strides > 1` together with
    // `dilation_rate > 1`; its depthwise and separable ones do not, and JAX computes them.
    let refuses = matches!(s.form, Form::Conv | Form::Transpose);
    if let (true, Some((strides, _)), Some((dilation, Some(dilation_arg)))) =
        (refuses, &strides, &dilation)
    {
        if strides.iter().any(|v| *v > 1) && dilation.iter().any(|v| *v > 1) {
            errors.push(Error::new_spanned(
                &dilation_arg.expr,
                format!(
                    "`{}` cannot combine `{}` > 1 with `dilation_rate` > 1 (Keras 3 refuses it), found `{} = {}` and `dilation_rate = {}`",
                    b.class(),
                    s.strides,
                    s.strides,
                    spatial_text(strides, s.rank),
                    spatial_text(dilation, s.rank)
                ),
            ));
        }
    }
    // Keras 3 wants each `output_padding` below the stride along its axis.
    if let (Some((strides, _)), Some((extra, Some(extra_arg)))) = (&strides, &output_padding) {
        if extra.iter().zip(strides).any(|(p, s)| p >= s) {
            errors.push(Error::new_spanned(
                &extra_arg.expr,
                format!(
                    "`output_padding` of `{}` must be less than `{}` along each axis (Keras 3 refuses it), found `output_padding = {}` and `{} = {}`",
                    b.class(),
                    s.strides,
                    spatial_text(extra, s.rank),
                    s.strides,
                    spatial_text(strides, s.rank)
                ),
            ));
        }
    }
    // Keras 1's `input_length` already has its error; the input shape it meant is unknown.
    let input_length = s.keras1
        && b.get("input_length")
            .is_some_and(|a| !matches!(a.value, Value::None));
    let spatial_in = if input_length {
        None
    } else {
        errors.ok(input_dims(b, input, s, channels_first.unwrap_or(false)))
    };
    if let (Some(groups), Some(filters), Some(groups_arg)) =
        (groups, filters, s.groups.and_then(|g| b.get(g)))
    {
        if filters % groups != 0 {
            errors.push(Error::new_spanned(
                &groups_arg.expr,
                format!(
                    "`groups = {groups}` of `{}` must divide `{}`, found {filters} filters",
                    b.class(),
                    s.filters
                ),
            ));
        }
        if let Some((_, channels)) = spatial_in {
            if channels % groups != 0 {
                errors.push(Error::new_spanned(
                    &groups_arg.expr,
                    format!(
                        "`groups = {groups}` of `{}` must divide the input channels, but {} has {channels} channels",
                        b.class(),
                        input.phrase()
                    ),
                ));
            }
        }
    }
    errors.into_result()?;
    let (
        Some(filters),
        Some(multiplier),
        Some((kernel, kernel_args)),
        Some((strides, _)),
        Some((dilation, _)),
        Some(groups),
        Some(padding),
        Some(channels_first),
        Some((spatial_in, channels)),
        Some(activation),
        Some(use_bias),
        Some(kernel_initializer),
        Some(bias_initializer),
        Some(pointwise_initializer),
        Some((output_padding, output_padding_arg)),
    ) = (
        filters,
        multiplier,
        kernel,
        strides,
        dilation,
        groups,
        padding,
        channels_first,
        spatial_in,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        pointwise_initializer,
        output_padding,
    )
    else {
        return Err(Error::new_spanned(
            &b.call.call,
            format!("invalid `{}` arguments", b.class()),
        ));
    };

    // Output size and leading padding, axis by axis (a `Conv1D` is one row high).
    let mut errors = Errors::default();
    let mut output = [1usize; 2];
    let mut pad = [0usize; 2];
    for axis in 2 - s.rank..2 {
        let (n, k, st, d) = (
            spatial_in[axis],
            kernel[axis],
            strides[axis],
            dilation[axis],
        );
        // Each factor is at most 2^24: no overflow.
        let span = (k - 1) * d + 1;
        if s.form == Form::Transpose {
            let extra = output_padding_arg.map(|_| output_padding[axis]);
            (output[axis], pad[axis]) = transposed_axis(n, span, st, padding, extra);
            if output[axis] == 0 {
                let word = axis_word(s.rank, axis);
                let message = format!(
                    "`{}` output {word} would be 0: with `{} = \"same\"` and `output_padding = {}`, Keras makes it `({n} - 1) * {st} + {span} % 2 + {}` for the {word} {n} of {} and a kernel spanning {span}\n  help: leave `output_padding` out (the output {word} is then `{word} * {}`), or use `{} = \"valid\"`",
                    b.class(),
                    s.padding,
                    spatial_text(&output_padding, s.rank),
                    output_padding[axis],
                    input.phrase(),
                    s.strides,
                    s.padding
                );
                errors.push(match output_padding_arg {
                    Some(arg) => Error::new_spanned(&arg.expr, message),
                    None => Error::new_spanned(&b.call.call, message),
                });
            }
            continue;
        }
        match padding {
            Padding::Valid if span > n => {
                let word = axis_word(s.rank, axis);
                let dilated = if d > 1 {
                    format!(" dilated by {d} spans {span}, which is")
                } else {
                    " is".to_string()
                };
                let message = format!(
                    "`{}` kernel {word} {k}{dilated} larger than the {word} {n} of {}; with `{} = \"valid\"` the output {word} would be 0\n  help: use `{} = \"same\"`, or a kernel that fits",
                    b.class(),
                    input.phrase(),
                    s.padding,
                    s.padding
                );
                errors.push(match kernel_args[axis] {
                    Some(arg) => Error::new_spanned(&arg.expr, message),
                    None => Error::new_spanned(&b.call.call, message),
                });
            }
            Padding::Valid => output[axis] = (n - span) / st + 1,
            Padding::Same => {
                output[axis] = n.div_ceil(st);
                pad[axis] = ((output[axis] - 1) * st + span).saturating_sub(n) / 2;
            }
            Padding::Causal => {
                output[axis] = n.div_ceil(st);
                pad[axis] = span - 1;
            }
        }
    }
    errors.into_result()?;
    let spatial_out: Vec<usize> = output[2 - s.rank..].to_vec();
    let with_channels = |spatial: &[usize], channels: usize| {
        if channels_first {
            Shape(
                std::iter::once(channels)
                    .chain(spatial.iter().copied())
                    .collect(),
            )
        } else {
            Shape(
                spatial
                    .iter()
                    .copied()
                    .chain(std::iter::once(channels))
                    .collect(),
            )
        }
    };
    let kernel_spatial = kernel[2 - s.rank..].iter().copied();
    // The runtime's geometry is always a convolution's: a transposed layer's is the one it
    // transposes (from the output to the input), a depthwise one has a group per channel.
    let depthwise = matches!(s.form, Form::Depthwise | Form::Separable);
    let middle = channels.saturating_mul(multiplier);
    let (geometry, output_channels, kernel_shape) = match s.form {
        Form::Transpose => (
            Geometry {
                rank: s.rank,
                input: output,
                channels: filters,
                output: spatial_in,
                filters: channels,
                kernel,
                strides,
                dilation,
                padding: pad,
                groups: 1,
                channels_first,
                depthwise: false,
            },
            filters,
            Shape(kernel_spatial.chain([filters, channels]).collect()),
        ),
        _ => (
            Geometry {
                rank: s.rank,
                input: spatial_in,
                channels,
                output,
                filters: if depthwise { middle } else { filters },
                kernel,
                strides,
                dilation,
                padding: pad,
                groups: if depthwise { channels } else { groups },
                channels_first,
                depthwise,
            },
            if s.form == Form::Depthwise {
                middle
            } else {
                filters
            },
            if depthwise {
                Shape(kernel_spatial.chain([channels, multiplier]).collect())
            } else {
                Shape(kernel_spatial.chain([channels / groups, filters]).collect())
            },
        ),
    };
    let pointwise = if separable {
        let middle_shape = with_channels(&spatial_out, middle);
        // Not an output nor a weight, so the checker does not see it: the training pass keeps
        // it, a tensor like any other.
        if middle_shape.elements().is_none_or(|n| n > MAX_ELEMENTS) {
            return Err(Error::new(
                b.call.class.span(),
                format!(
                    "the depthwise output {middle_shape} of `{}` is too large: kiln holds at most {MAX_ELEMENTS} values per sample",
                    b.class()
                ),
            ));
        }
        Some(Pointwise {
            filters,
            middle: middle_shape,
            initializer: pointwise_initializer,
            regularizer: pointwise_regularizer,
            constraint: pointwise_constraint,
        })
    } else {
        None
    };
    Ok(Box::new(Conv {
        form: s.form,
        geometry,
        input: input.shape.clone(),
        output: with_channels(&spatial_out, output_channels),
        kernel_shape,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        kernel_regularizer,
        bias_regularizer,
        activity_regularizer,
        kernel_constraint,
        bias_constraint,
        pointwise,
    }))
}

/// Keras 3's output size along one axis of a transposed convolution, and the leading
/// padding of the convolution it transposes: for an input of `n`, a kernel spanning `span`,
/// stride `stride` and `output_padding` `extra` (Keras's `compute_conv_transpose_output_shape`
/// and the JAX backend's `compute_conv_transpose_padding_args_for_jax`):
/// - `valid`: `(n - 1) * stride + span + extra`, `extra` defaulting to
///   `max(span, stride) - span`; JAX pads `span - 1` before, so nothing is cut;
/// - `same`: `n * stride` without `extra`, else `(n - 1) * stride + span % 2 + extra`; JAX
///   pads `left = min(ceil(total / 2), span - 1)` before, `total` being
///   `stride + span - 2` (without `extra`) or `span + span % 2 - 2 + extra`.
///
/// The transposed convolution's padding is `span - 1 - left`.
fn transposed_axis(
    n: usize,
    span: usize,
    stride: usize,
    padding: Padding,
    extra: Option<usize>,
) -> (usize, usize) {
    let base = (n - 1) * stride;
    if padding != Padding::Same {
        let extra = extra.unwrap_or(span.max(stride) - span);
        return (base + span + extra, 0);
    }
    let (size, total) = match extra {
        None => (n * stride, stride + span - 2),
        Some(extra) => (base + span % 2 + extra, span + span % 2 - 2 + extra),
    };
    let left = (total / 2 + total % 2).min(span - 1);
    (size, span - 1 - left)
}

/// A positive integer argument up to `LIMIT` (`depth_multiplier`), 1 when absent.
fn at_most_limit(b: &Bound, name: &str) -> Result<usize, Error> {
    match b.get(name) {
        None => Ok(1),
        Some(arg) => match arg.value {
            Value::Int(v) if v > LIMIT => Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "`{name}` of `{}` must be at most {LIMIT}, found `{v}`",
                    b.class()
                ),
            )),
            _ => b.positive(name),
        },
    }
}

/// How messages name spatial axis `axis` (0 = height, 1 = width; a `Conv1D` has one axis).
fn axis_word(rank: usize, axis: usize) -> &'static str {
    match (rank, axis) {
        (1, _) => "length",
        (_, 0) => "height",
        _ => "width",
    }
}

/// `(3, 3)` for a `Conv2D` value, `3` for a `Conv1D` one.
fn spatial_text(v: &[usize; 2], rank: usize) -> String {
    if rank == 1 {
        v[1].to_string()
    } else {
        format!("({}, {})", v[0], v[1])
    }
}

/// Keras 1's arguments with no Keras 3 counterpart: `weights` and `input_length`.
fn keras1_only(b: &Bound, errors: &mut Errors) {
    let class = b.class();
    if let Some(arg) = b.get("weights").filter(|a| !matches!(a.value, Value::None)) {
        errors.push(Error::new_spanned(
            &arg.expr,
            format!(
                "`weights` of `{class}` is not supported; kiln sets weights by name\n  help: use `set_weight(\"conv2d/kernel\", ...)`, `load_weights` or `#[weights = \"file.safetensors\"]`"
            ),
        ));
    }
    if let Some(arg) = b
        .get("input_length")
        .filter(|a| !matches!(a.value, Value::None))
    {
        let dims = match (&arg.value, b.get("input_dim").map(|a| &a.value)) {
            (Value::Int(length), Some(Value::Int(dim))) => format!("({length}, {dim})"),
            _ => "(input_length, input_dim)".to_string(),
        };
        errors.push(Error::new_spanned(
            &arg.expr,
            format!(
                "`input_length` of `{class}` is Keras 1's; kiln takes the input shape whole\n  help: write `input_shape = {dims}` instead of `input_dim` and `input_length`"
            ),
        ));
    }
}

/// The input's spatial size (`[1, steps]` for rank 1) and channels, or the rank error.
fn input_dims(
    b: &Bound,
    input: &LayerInput,
    s: &Spelling,
    channels_first: bool,
) -> Result<([usize; 2], usize), Error> {
    let dims = &input.shape.0;
    match (s.rank, channels_first, dims.as_slice()) {
        (1, false, &[steps, channels]) => Ok(([1, steps], channels)),
        (1, true, &[channels, steps]) => Ok(([1, steps], channels)),
        (2, false, &[h, w, channels]) => Ok(([h, w], channels)),
        (2, true, &[channels, h, w]) => Ok(([h, w], channels)),
        _ => {
            let class = b.class();
            let (expected, help) = match (s.rank, channels_first) {
                (1, false) => ("a rank-2 input `(steps, channels)`", match (dims.as_slice(), b.get("input_dim")) {
                    ([n], Some(_)) => format!("\n  help: `input_dim` declares {n} values, not steps; write `input_shape = (steps, {n})`"),
                    ([n], None) => format!("\n  help: `Reshape(({n}, 1))` before it makes {n} steps of one channel"),
                    _ => String::new(),
                }),
                (1, true) => ("a rank-2 input `(channels, steps)` (channels first)", String::new()),
                (_, false) => ("a rank-3 input `(height, width, channels)`", match dims.as_slice() {
                    [h, w] => format!("\n  help: `Reshape(({h}, {w}, 1))` before it adds a channel axis"),
                    _ => String::new(),
                }),
                (_, true) => ("a rank-3 input `(channels, height, width)` (channels first)", String::new()),
            };
            Err(Error::new(
                b.call.class.span(),
                format!(
                    "`{class}` expects {expected}, but {} has rank {}{help}",
                    input.phrase(),
                    dims.len()
                ),
            ))
        }
    }
}

/// `kernel_size` (an integer or one per axis), or Keras 1's one integer argument per axis,
/// with the argument that gave each axis.
fn kernel_size<'a>(
    b: &Bound<'a>,
    s: &Spelling,
) -> Result<([usize; 2], [Option<&'a Arg>; 2]), Error> {
    match &s.kernel {
        Kernel::Tuple(name) => {
            let (sizes, arg) = spatial(b, Some(name), s.rank)?;
            Ok((sizes, [arg, arg]))
        }
        Kernel::PerAxis(names) => {
            let mut errors = Errors::default();
            let mut sizes = [1usize; 2];
            let mut args = [None; 2];
            for (axis, name) in (2 - names.len().min(2)..2).zip(names.iter()) {
                if let Some(v) = errors.ok(per_axis(b, s, name, names)) {
                    sizes[axis] = v;
                }
                args[axis] = b.get(name);
            }
            errors.into_result()?;
            Ok((sizes, args))
        }
    }
}

/// One of Keras 1's per-axis kernel sizes (`nb_row`): a positive integer up to `LIMIT`. A
/// tuple there is most likely Keras 3's `kernel_size` under the Keras 1 class name.
fn per_axis(b: &Bound, s: &Spelling, name: &str, names: &[&str]) -> Result<usize, Error> {
    let class = b.class();
    let Some(arg) = b.get(name) else {
        return b.positive(name);
    };
    match &arg.value {
        Value::Tuple(_) | Value::List(_) => {
            let keras3 = if s.rank == 1 { "Conv1D" } else { "Conv2D" };
            Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected an integer for `{name}` of `{class}`, found {}\n  help: `{class}` is Keras 1's `{class}({}, {}, ...)`; for Keras 3's `kernel_size` tuple use `{keras3}(filters, kernel_size, ...)`",
                    arg.value.describe(),
                    s.filters,
                    names.join(", ")
                ),
            ))
        }
        Value::Int(v) if *v > LIMIT => Err(Error::new_spanned(
            &arg.expr,
            format!("`{name}` of `{class}` must be at most {LIMIT}, found `{v}`"),
        )),
        _ => b.positive(name),
    }
}

/// An integer or a tuple/list of `rank` integers, each in `1..=LIMIT`, as `[h, w]` (`[1, n]`
/// for rank 1); `[1, 1]` when absent.
fn spatial<'a>(
    b: &Bound<'a>,
    name: Option<&str>,
    rank: usize,
) -> Result<([usize; 2], Option<&'a Arg>), Error> {
    spatial_from(b, name, rank, 1)
}

/// [`spatial`] with values from `min` (0 or 1) up: with 0 (`output_padding`), `None` is
/// Keras's default and reads as absent, and a `Conv1D`'s height is 0.
fn spatial_from<'a>(
    b: &Bound<'a>,
    name: Option<&str>,
    rank: usize,
    min: usize,
) -> Result<([usize; 2], Option<&'a Arg>), Error> {
    let Some((name, arg)) = name.and_then(|n| b.get(n).map(|a| (n, a))) else {
        return Ok(([min; 2], None));
    };
    if min == 0 && matches!(arg.value, Value::None) {
        return Ok(([0; 2], None));
    }
    let class = b.class();
    let check = |item: &Arg, within: bool| -> Result<usize, Error> {
        let place = if within {
            format!("each value in `{name}` of `{class}`")
        } else {
            format!("`{name}` of `{class}`")
        };
        match item.value {
            Value::Int(v) if (min as i128..=LIMIT).contains(&v) => Ok(v as usize),
            Value::Int(v) if v > LIMIT => Err(Error::new_spanned(
                &item.expr,
                format!("{place} must be at most {LIMIT}, found `{v}`"),
            )),
            Value::Int(v) if min == 0 => Err(Error::new_spanned(
                &item.expr,
                format!("{place} must be at least 0, found `{v}`"),
            )),
            Value::Int(v) => Err(Error::new_spanned(
                &item.expr,
                format!("{place} must be a positive integer, found `{v}`"),
            )),
            ref other => Err(Error::new_spanned(
                &item.expr,
                format!(
                    "expected an integer {} `{name}` of `{class}`, found {}",
                    if within {
                        "in"
                    } else {
                        "or a tuple of integers for"
                    },
                    other.describe()
                ),
            )),
        }
    };
    let values: Vec<usize> = match &arg.value {
        Value::Tuple(items) | Value::List(items) => {
            if items.len() != rank {
                let (wanted, example) = if rank == 1 {
                    ("1 value", "`3` or `(3,)`")
                } else {
                    ("2 values", "`3` or `(3, 3)`")
                };
                return Err(Error::new_spanned(
                    &arg.expr,
                    format!(
                        "expected an integer or {wanted} for `{name}` of `{class}`, like {example}, found {} values",
                        items.len()
                    ),
                ));
            }
            let mut errors = Errors::default();
            let values = items
                .iter()
                .filter_map(|item| errors.ok(check(item, true)))
                .collect();
            errors.into_result()?;
            values
        }
        _ => vec![check(arg, false)?; rank],
    };
    let mut out = [min; 2];
    for (slot, v) in out[2 - rank..].iter_mut().zip(values) {
        *slot = v;
    }
    Ok((out, Some(arg)))
}

/// `"valid"`, `"same"` or (`Conv1D`) `"causal"`, case-insensitive as in Keras; Keras 1's
/// `border_mode` takes `"valid"` and `"same"`.
fn padding(b: &Bound, s: &Spelling) -> Result<Padding, Error> {
    let class = b.class();
    let Some((text, arg)) = b.string(s.padding)? else {
        return Ok(Padding::Valid);
    };
    let allowed: &[&str] = if s.causal && !s.keras1 {
        &["valid", "same", "causal"]
    } else {
        &["valid", "same"]
    };
    let lower = text.to_lowercase();
    match lower.as_str() {
        "valid" => return Ok(Padding::Valid),
        "same" => return Ok(Padding::Same),
        "causal" if allowed.contains(&"causal") => return Ok(Padding::Causal),
        _ => {}
    }
    let list: Vec<String> = allowed.iter().map(|a| format!("`\"{a}\"`")).collect();
    let expected = match list.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => list.join(""),
    };
    let name = s.padding;
    let message = match lower.as_str() {
        "causal" if s.keras1 => format!(
            "`{name} = {text:?}` is not in Keras 1's `{class}`; expected {expected}\n  help: Keras 3's `Conv1D(..., padding = \"causal\")` pads causally"
        ),
        "causal" => format!(
            "`{name} = {text:?}` is only for `Conv1D`; `{class}` takes {expected}"
        ),
        "full" if s.keras1 => format!(
            "`{name} = {text:?}` of `{class}` has no Keras 3 equivalent (Keras 2 dropped it); expected {expected}"
        ),
        _ => format!(
            "expected {expected} for `{name}` of `{class}`, found `{text:?}`{}",
            did_you_mean(&lower, allowed.iter().copied())
        ),
    };
    Err(Error::new_spanned(&arg.expr, message))
}

/// Whether the data is channels first: `data_format` (`None`, `"channels_last"`,
/// `"channels_first"`, case-insensitive as in Keras), or Keras 1's `dim_ordering` (`"tf"`,
/// `"th"`, `"default"` = kiln's default, channels last); not both.
fn channels_first(b: &Bound, s: &Spelling) -> Result<bool, Error> {
    let class = b.class();
    let format = s.data_format.and_then(|n| b.get(n).map(|a| (n, a)));
    let ordering = s.dim_ordering.and_then(|n| b.get(n).map(|a| (n, a)));
    if let (Some((format_name, _)), Some((ordering_name, arg))) = (format, ordering) {
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "`{class}` takes `{ordering_name}` or its Keras 2 name `{format_name}`, not both"
            ),
        ));
    }
    if let Some((name, arg)) = ordering {
        return match &arg.value {
            Value::Str(v) if v == "th" => Ok(true),
            Value::Str(v) if v == "tf" || v == "default" => Ok(false),
            other => Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected `\"th\"` (channels first) or `\"tf\"` (channels last) for `{name}` of `{class}`, found {}",
                    other.describe()
                ),
            )),
        };
    }
    let Some((name, arg)) = format else {
        return Ok(false);
    };
    let allowed = ["channels_last", "channels_first"];
    match &arg.value {
        Value::None => Ok(false),
        Value::Str(v) if v.eq_ignore_ascii_case("channels_last") => Ok(false),
        Value::Str(v) if v.eq_ignore_ascii_case("channels_first") => Ok(true),
        Value::Str(v) => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected `\"channels_last\"` or `\"channels_first\"` for `{name}` of `{class}`, found `{v:?}`{}",
                did_you_mean(&v.to_lowercase(), allowed)
            ),
        )),
        other => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected `\"channels_last\"` or `\"channels_first\"` for `{name}` of `{class}`, found {}",
                other.describe()
            ),
        )),
    }
}

impl Conv {
    /// Statements adding the activity regulariser's loss of `y` to `pass` (batch mode).
    fn activity_loss(&self) -> TokenStream {
        crate::regularizers::activity_loss(&self.activity_regularizer, self.output.len())
    }

    /// The runtime type: `Conv`, or the structs built on it.
    fn runtime_type(&self) -> TokenStream {
        match self.form {
            Form::Conv | Form::Depthwise => quote!(::kiln::__private::layers::Conv),
            Form::Separable => quote!(::kiln::__private::layers::SeparableConv),
            Form::Transpose => quote!(::kiln::__private::layers::ConvTranspose),
        }
    }
}

impl Layer for Conv {
    fn output_shape(&self) -> Shape {
        self.output.clone()
    }

    fn weights(&self) -> Vec<Weight> {
        let suffix = match self.pointwise {
            Some(_) => "depthwise_kernel",
            None => "kernel",
        };
        let mut kernel = Weight::new(suffix, self.kernel_shape.clone());
        kernel.regularizer = self.kernel_regularizer.clone();
        kernel.constraint = self.kernel_constraint.clone();
        let mut weights = vec![kernel];
        let mut bias_size = self.geometry.filters;
        if let Some(p) = &self.pointwise {
            let shape = Shape(
                vec![1; self.geometry.rank]
                    .into_iter()
                    .chain([self.geometry.filters, p.filters])
                    .collect(),
            );
            let mut pointwise = Weight::new("pointwise_kernel", shape);
            pointwise.regularizer = p.regularizer.clone();
            pointwise.constraint = p.constraint.clone();
            weights.push(pointwise);
            bias_size = p.filters;
        }
        if self.form == Form::Transpose {
            bias_size = self.geometry.channels;
        }
        if self.use_bias {
            let mut bias = Weight::new("bias", Shape(vec![bias_size]));
            bias.regularizer = self.bias_regularizer.clone();
            bias.constraint = self.bias_constraint.clone();
            weights.push(bias);
        }
        weights
    }

    fn state_type(&self) -> Option<TokenStream> {
        Some(self.runtime_type())
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let geometry = self.geometry.tokens();
        let ty = self.runtime_type();
        let (use_bias, k, b) = (
            self.use_bias,
            &self.kernel_initializer,
            &self.bias_initializer,
        );
        match &self.pointwise {
            Some(p) => {
                let (filters, pk) = (p.filters, &p.initializer);
                quote!(#ty::new(#geometry, #filters, #use_bias, #k, #pk, #b, #seed, #first_weight))
            }
            None => quote!(#ty::new(#geometry, #use_bias, #k, #b, #seed, #first_weight)),
        }
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let geometry = self.geometry.tokens();
        let ty = self.runtime_type();
        let weight = |k: usize| match weights.get(k) {
            Some(w) => w.clone(),
            None => quote!(&[]),
        };
        let kernels = if self.pointwise.is_some() { 2 } else { 1 };
        let bias = match weights.get(kernels) {
            Some(bias) => quote!(::core::option::Option::Some(#bias)),
            None => quote!(::core::option::Option::None),
        };
        match &self.pointwise {
            Some(p) => {
                let (filters, depthwise, pointwise) = (p.filters, weight(0), weight(1));
                quote!(#ty::baked(#geometry, #filters, #depthwise, #pointwise, #bias))
            }
            None => {
                let kernel = weight(0);
                quote!(#ty::baked(#geometry, #kernel, #bias))
            }
        }
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let (rows, cols) = (self.output.last(), self.output.positions());
        let input_ty = self.input.tensor_type(f.mode);
        let in_len = self.input.len();
        let apply = self.activation.apply(&quote!(y), rows);
        let activity = match f.mode {
            Mode::Batch => self.activity_loss(),
            Mode::Sample => quote!(),
        };
        quote!({
            let samples = ::kiln::__private::Tensor::values(&x).len() / #in_len;
            let mut y = <#input_ty as ::kiln::__private::Tensor>::zeros_shaped::<#rows, #cols>(samples);
            #state.forward(
                ::kiln::__private::Tensor::values(&x),
                ::kiln::__private::Tensor::values_mut(&mut y),
            );
            #apply
            #activity
            y
        })
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        let state = &f.state;
        let apply = self.activation.apply_slice(&quote!(y), self.output.last());
        Some(SliceForward::Map(quote!(
            #state.forward(x, y);
            #apply
        )))
    }

    fn borrows_training_input(&self) -> bool {
        true
    }

    fn forward_train(&self, f: &Forward) -> TokenStream {
        // Every tensor comes from and goes back to the step's pool: no allocation per step.
        let state = &f.state;
        let (rows, cols) = (self.output.last(), self.output.positions());
        let in_len = self.input.len();
        let activity = self.activity_loss();
        let values = quote!(::kiln::__private::Tensor::values);
        let values_mut = quote!(::kiln::__private::Tensor::values_mut);
        let conv = match &self.pointwise {
            // The depthwise output is kept for the backward pass.
            Some(p) => {
                let (m_rows, m_cols) = (p.middle.last(), p.middle.positions());
                quote! {
                    let samples = #values(x).len() / #in_len;
                    let mut middle = pass.pool.take_to_overwrite::<#m_rows>(samples * #m_cols);
                    let mut z = pass.pool.take_to_overwrite::<#rows>(samples * #cols);
                    #state.forward_through(#values(x), #values_mut(&mut middle), #values_mut(&mut z));
                }
            }
            None => quote! {
                let samples = #values(x).len() / #in_len;
                let mut z = pass.pool.take_to_overwrite::<#rows>(samples * #cols);
                #state.forward(#values(x), #values_mut(&mut z));
            },
        };
        // The pre-activation `z` is the cache when the activation's derivative needs it.
        let linear = self.activation.name == "linear";
        let (finish, cache) = if linear {
            (quote!(let y = z;), quote!(()))
        } else {
            let act = &self.activation.tokens;
            let finish = quote! {
                let mut y = pass.pool.take_to_overwrite::<#rows>(z.ncols());
                #act.apply_from(#values(&z), #values_mut(&mut y), #rows);
            };
            (finish, quote!(z))
        };
        let cache = match self.pointwise {
            Some(_) => quote!((middle, #cache)),
            None => cache,
        };
        quote!({
            #conv
            #finish
            #activity
            (y, #cache)
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        let state = &b.state;
        let rows = self.output.last();
        let activity = match &self.activity_regularizer {
            Some(reg) => {
                let per_sample = self.output.len();
                quote!(::kiln::__private::add_activity_gradient(&#reg, ::kiln::__private::Tensor::values(y), ::kiln::__private::Tensor::values_mut(&mut dz), #per_sample);)
            }
            None => quote!(),
        };
        let linear = self.activation.name == "linear";
        let activation = if linear {
            quote!()
        } else {
            let act = &self.activation.tokens;
            let guard = if b.last { quote!(if !fused) } else { quote!() };
            quote!(#guard {
                #act.backward(
                    ::kiln::__private::Tensor::values(&cache),
                    ::kiln::__private::Tensor::values(y),
                    ::kiln::__private::Tensor::values_mut(&mut dz),
                    #rows,
                );
            })
        };
        let give_cache = if linear {
            quote!()
        } else {
            quote!(pass.pool.give(cache);)
        };
        let (k, use_bias) = (b.first_weight, self.use_bias);
        let input_rows = self.input.last();
        let values = quote!(::kiln::__private::Tensor::values);
        let (split, run, give_middle) = match self.pointwise {
            // Three weights: the depthwise and pointwise kernels, then the bias.
            Some(_) => {
                let bias = if use_bias {
                    quote!(slots.first_mut().map(|bias| bias.as_mut_slice()))
                } else {
                    quote!(::core::option::Option::None)
                };
                (
                    quote! {
                        let slots = &mut grads.all_mut()[#k..];
                        let (depthwise, slots) = slots.split_at_mut(1);
                        let (pointwise, slots) = slots.split_at_mut(1);
                        let grad_bias = #bias;
                    },
                    quote!(#values(&middle), #values(&dz), dx, [&mut depthwise[0], &mut pointwise[0]], grad_bias),
                    quote!(pass.pool.give(middle);),
                )
            }
            None => (
                quote!(let (grad_kernel, grad_bias) = grads.pair(#k, #use_bias);),
                quote!(#values(&dz), dx, grad_kernel, grad_bias),
                quote!(),
            ),
        };
        let call = |dx: TokenStream| {
            quote!({
                #split
                let dx = #dx;
                #state.backward(#values(x), #run, &mut pass.pool);
                pass.pool.give(dz);
                #give_middle
                #give_cache
            })
        };
        let result = if b.need_input_grad {
            let call = call(quote!(::core::option::Option::Some(
                ::kiln::__private::Tensor::values_mut(&mut dx)
            )));
            quote! {
                let mut dx = pass.pool.take_to_overwrite::<#input_rows>(x.ncols());
                #call
                dx
            }
        } else {
            call(quote!(::core::option::Option::None))
        };
        let unpack = match (&self.pointwise, linear) {
            (Some(_), true) => quote!(let (middle, ()) = cache;),
            (Some(_), false) => quote!(let (middle, cache) = cache;),
            (None, _) => quote!(),
        };
        Some(quote!({
            #unpack
            let mut dz = dy;
            #activity
            #activation
            #result
        }))
    }

    fn output_activation(&self) -> Option<TokenStream> {
        Some(self.activation.tokens.clone())
    }

    /// Streaming, for a channels-last `Conv1D` with stride 1 whose output at a timestep
    /// sees only that timestep and earlier ones: `padding = "causal"`, or a kernel spanning
    /// one timestep (any padding). Its state is the `(span - 1) * channels` input values of
    /// the timesteps before, oldest first (`kiln::layers::Conv::step`).
    fn step(&self, s: &super::Step) -> Option<super::StepCode> {
        let span = self.step_span().ok()?;
        let (w, filters) = (&s.weights, self.geometry.filters);
        let apply = self.activation.apply_slice(&quote!(y), filters);
        Some(super::StepCode {
            state_len: (span - 1).saturating_mul(self.geometry.channels),
            scratch_len: 0,
            code: SliceForward::Map(quote!(
                #w.step(x, state, y);
                #apply
            )),
            last_only: false,
        })
    }

    fn step_refusal(&self) -> Option<String> {
        self.step_span().err().flatten()
    }
}

impl Conv {
    /// The timesteps a streaming `Conv1D`'s kernel spans, or why it cannot stream (`None`
    /// for the other convolutions, which the default message covers).
    fn step_span(&self) -> Result<usize, Option<String>> {
        let g = &self.geometry;
        if self.form != Form::Conv || g.rank != 1 {
            return Err(None);
        }
        if g.channels_first {
            return Err(Some(
                "`Conv1D` with `data_format = \"channels_first\"` takes the timesteps as its channels and convolves along the features\n  help: use `data_format = \"channels_last\"` (the default)".to_string(),
            ));
        }
        let stride = g.strides[1];
        if stride > 1 {
            return Err(Some(format!(
                "`Conv1D` with `strides = {stride}` gives one output every {stride} timesteps, not one per timestep\n  help: use `strides = 1`, or give the input a fixed number of timesteps"
            )));
        }
        let span = g.kernel[1]
            .saturating_sub(1)
            .saturating_mul(g.dilation[1])
            .saturating_add(1);
        if g.padding[1] + 1 != span {
            return Err(Some(format!(
                "`Conv1D` without `padding = \"causal\"` needs timesteps after the current one (its kernel spans {span} timesteps)\n  help: use `padding = \"causal\"`, whose output at a timestep sees only that timestep and earlier ones"
            )));
        }
        Ok(span)
    }
}
