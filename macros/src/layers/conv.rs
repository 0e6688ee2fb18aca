//! What `Conv1D` and `Conv2D` (and Keras 1's `Convolution1D`, `Convolution2D`) share: reading
//! the arguments under either spelling, Keras 3's shape rule, and the code generation (a
//! `kiln::layers::Conv` kernel call, then the activation, as Dense does). `conv1d.rs` and
//! `conv2d.rs` hold the layer kinds.
//!
//! Shape rule along each spatial axis of size `n`, for a kernel of size `k`, dilation `d`
//! (its span is `e = (k - 1) * d + 1`) and stride `s`, as Keras 3's
//! `compute_conv_output_shape` and JAX's `SAME` padding compute it:
//! - `valid`: `floor((n - e) / s) + 1`, an error when `e > n` (the output would be empty);
//! - `same`: `ceil(n / s)`, padded with `max((out - 1) * s + e - n, 0)` zeros, half of them
//!   (rounded down) before and the rest after;
//! - `causal` (`Conv1D` only): `ceil(n / s)`, with `e - 1` zeros before.
//!
//! Checks, each a spanned error: positive `filters`, `kernel_size`, `strides`,
//! `dilation_rate` and `groups`; `kernel_size` etc. an integer or a tuple of one value per
//! spatial axis; not `strides > 1` together with `dilation_rate > 1` (Keras 3 refuses it);
//! `groups` dividing both `filters` and the input's channels; the input of rank 2 (`Conv1D`)
//! or 3 (`Conv2D`) per sample.

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
}

impl Geometry {
    fn tokens(&self) -> TokenStream {
        let Geometry {
            rank,
            channels,
            filters,
            groups,
            channels_first,
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
        })
    }
}

struct Conv {
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
    let filters = errors.ok(b.positive(s.filters));
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
    let mut regularizer = |name: &str| {
        b.get(name)
            .and_then(|arg| errors.ok(regularizers::resolve(arg)))
            .flatten()
    };
    let kernel_regularizer = regularizer(s.kernel_regularizer);
    let bias_regularizer = regularizer(s.bias_regularizer);
    let activity_regularizer = regularizer("activity_regularizer");
    let mut constraint = |name: &str, rank: usize| {
        b.get(name)
            .and_then(|arg| errors.ok(constraints::resolve(arg, rank)))
            .flatten()
    };
    let kernel_constraint = constraint(s.kernel_constraint, s.rank + 2);
    let bias_constraint = constraint(s.bias_constraint, 1);

    // Keras 3's constructor refuses `strides > 1` together with `dilation_rate > 1`.
    if let (Some((strides, _)), Some((dilation, Some(dilation_arg)))) = (&strides, &dilation) {
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
    ) = (
        filters,
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
    let output_shape = if channels_first {
        Shape(std::iter::once(filters).chain(spatial_out).collect())
    } else {
        Shape(
            spatial_out
                .into_iter()
                .chain(std::iter::once(filters))
                .collect(),
        )
    };
    let kernel_shape = Shape(
        kernel[2 - s.rank..]
            .iter()
            .copied()
            .chain([channels / groups, filters])
            .collect(),
    );
    Ok(Box::new(Conv {
        geometry: Geometry {
            rank: s.rank,
            input: spatial_in,
            channels,
            output,
            filters,
            kernel,
            strides,
            dilation,
            padding: pad,
            groups,
            channels_first,
        },
        input: input.shape.clone(),
        output: output_shape,
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
    }))
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
    let Some((name, arg)) = name.and_then(|n| b.get(n).map(|a| (n, a))) else {
        return Ok(([1, 1], None));
    };
    let class = b.class();
    let check = |item: &Arg, within: bool| -> Result<usize, Error> {
        let place = if within {
            format!("each value in `{name}` of `{class}`")
        } else {
            format!("`{name}` of `{class}`")
        };
        match item.value {
            Value::Int(v) if (1..=LIMIT).contains(&v) => Ok(v as usize),
            Value::Int(v) if v > LIMIT => Err(Error::new_spanned(
                &item.expr,
                format!("{place} must be at most {LIMIT}, found `{v}`"),
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
    let mut out = [1usize; 2];
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
        match &self.activity_regularizer {
            Some(reg) => {
                let per_sample = self.output.len();
                quote!(::kiln::__private::add_activity_loss(pass, &#reg, ::kiln::__private::Tensor::values(&y), #per_sample);)
            }
            None => quote!(),
        }
    }
}

impl Layer for Conv {
    fn output_shape(&self) -> Shape {
        self.output.clone()
    }

    fn weights(&self) -> Vec<Weight> {
        let mut kernel = Weight::new("kernel", self.kernel_shape.clone());
        kernel.regularizer = self.kernel_regularizer.clone();
        kernel.constraint = self.kernel_constraint.clone();
        let mut weights = vec![kernel];
        if self.use_bias {
            let mut bias = Weight::new("bias", Shape(vec![self.geometry.filters]));
            bias.regularizer = self.bias_regularizer.clone();
            bias.constraint = self.bias_constraint.clone();
            weights.push(bias);
        }
        weights
    }

    fn state_type(&self) -> Option<TokenStream> {
        Some(quote!(::kiln::__private::layers::Conv))
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let geometry = self.geometry.tokens();
        let (use_bias, k, b) = (
            self.use_bias,
            &self.kernel_initializer,
            &self.bias_initializer,
        );
        quote!(::kiln::__private::layers::Conv::new(#geometry, #use_bias, #k, #b, #seed, #first_weight))
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let geometry = self.geometry.tokens();
        let kernel = match weights.first() {
            Some(kernel) => kernel.clone(),
            None => quote!(&[]),
        };
        let bias = match weights.get(1) {
            Some(bias) => quote!(::core::option::Option::Some(#bias)),
            None => quote!(::core::option::Option::None),
        };
        quote!(::kiln::__private::layers::Conv::baked(#geometry, #kernel, #bias))
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
        let conv = quote! {
            let samples = ::kiln::__private::Tensor::values(x).len() / #in_len;
            let mut z = pass.pool.take_to_overwrite::<#rows>(samples * #cols);
            #state.forward(
                ::kiln::__private::Tensor::values(x),
                ::kiln::__private::Tensor::values_mut(&mut z),
            );
        };
        if self.activation.name == "linear" {
            return quote!({
                #conv
                let y = z;
                #activity
                (y, ())
            });
        }
        let apply = self.activation.apply(&quote!(y), rows);
        // The pre-activation `z` is the cache: the activation's derivative needs it.
        quote!({
            #conv
            let mut y = pass.pool.copy_of(&z);
            #apply
            #activity
            (y, z)
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
        let call = |dx: TokenStream| {
            quote! {
                let (grad_kernel, grad_bias) = grads.pair(#k, #use_bias);
                #state.backward(
                    ::kiln::__private::Tensor::values(x),
                    ::kiln::__private::Tensor::values(&dz),
                    #dx,
                    grad_kernel,
                    grad_bias,
                    &mut pass.pool,
                );
                pass.pool.give(dz);
                #give_cache
            }
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
        Some(quote!({
            let mut dz = dy;
            #activity
            #activation
            #result
        }))
    }

    fn output_activation(&self) -> Option<TokenStream> {
        Some(self.activation.tokens.clone())
    }
}
