//! `Input(shape, name = None)`: declares the per-sample input shape; not a layer of the
//! model (Keras 3's `summary()` does not list it either). The same shape rules apply to
//! `input_shape = (...)` and `input_dim = n` on the first layer.
//!
//! `shape = (None, features)` declares sequences of any length: the model is checked and
//! built with one timestep (its `Model` impl sees sequences of length 1), and every layer
//! must run one timestep at a time (`Layer::step`), which `check.rs` enforces, so the model
//! gets `predict_sequence` and `predict_chunk` for any length (`expand.rs`, `streaming`).
//! Only the timesteps axis of a rank-2 shape may be `None`, or the one axis of `(None,)`,
//! the ids of a first `Embedding`.

use crate::args::{Bound, Signature};
use crate::ast::{Arg, Value};
use crate::shape::{Shape, MAX_ELEMENTS};
use syn::Error;

pub const SIGNATURE: Signature = Signature {
    params: &["shape"],
    required: 1,
};

/// The shape declared by `Input(shape = ...)`, and whether its timesteps are `None`
/// (variable; the shape then holds 1 there).
pub fn from_input(b: &Bound) -> Result<(Shape, bool), Error> {
    let arg = b.get("shape").ok_or_else(|| {
        Error::new_spanned(
            &b.call.call,
            "`Input` is missing its required argument `shape`",
        )
    })?;
    shape_arg(b, "shape", arg)
}

/// The shape declared by `input_shape = (...)` or `input_dim = n` on a first layer, as
/// [`from_input`].
pub fn from_first_layer(b: &Bound) -> Option<Result<(Shape, bool), Error>> {
    if let Some(arg) = b.get("input_shape") {
        return Some(shape_arg(b, "input_shape", arg));
    }
    let arg = b.get("input_dim")?;
    Some(
        b.positive("input_dim")
            .and_then(|n| checked(Shape(vec![n]), arg))
            .map(|shape| (shape, false)),
    )
}

/// `(None, features)`: the features, when `arg` is a rank-2 tuple led by `None`; `(None,)`.
fn variable_timesteps(b: &Bound, name: &str, arg: &Arg) -> Result<Option<Shape>, Error> {
    let (Value::Tuple(items) | Value::List(items)) = &arg.value else {
        return Ok(None);
    };
    let Some(none_at) = items.iter().position(|i| matches!(i.value, Value::None)) else {
        return Ok(None);
    };
    let class = b.class();
    match (items.as_slice(), none_at) {
        // `Embedding`'s ids, one per timestep (`check.rs` refuses it for other layers).
        ([_], 0) => checked(Shape(vec![1]), arg).map(Some),
        ([_, features], 0) => match features.value {
            Value::Int(f @ 1..) => {
                let f = usize::try_from(f).unwrap_or(usize::MAX);
                checked(Shape(vec![1, f]), arg).map(Some)
            }
            _ => Err(Error::new_spanned(
                &features.expr,
                format!(
                    "expected a positive integer for the features of `{name}` of `{class}`, found {}",
                    features.value.describe()
                ),
            )),
        },
        _ => Err(Error::new_spanned(
            items.get(none_at).map_or(&arg.expr, |i| &i.expr),
            format!(
                "`None` in `{name}` of `{class}` is only supported as the timesteps of a sequence, `(None, features)`: kiln fixes every other dimension at compile time"
            ),
        )),
    }
}

fn shape_arg(b: &Bound, name: &str, arg: &Arg) -> Result<(Shape, bool), Error> {
    if let Some(shape) = variable_timesteps(b, name, arg)? {
        return Ok((shape, true));
    }
    shape_arg_fixed(b, name, arg).map(|shape| (shape, false))
}

fn shape_arg_fixed(b: &Bound, name: &str, arg: &Arg) -> Result<Shape, Error> {
    let class = b.class();
    let dims = b.int_tuple(name, 1)?.unwrap_or_default();
    if dims.is_empty() {
        return Err(Error::new_spanned(
            &arg.expr,
            format!("`{name}` of `{class}` must have at least one dimension, like `(4,)`"),
        ));
    }
    if dims.len() > 4 {
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected 1 to 4 dimensions in `{name}` of `{class}` (kiln's per-sample ranks), found {}",
                dims.len()
            ),
        ));
    }
    let dims = dims
        .into_iter()
        .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    checked(Shape(dims), arg)
}

fn checked(shape: Shape, arg: &Arg) -> Result<Shape, Error> {
    let found = match shape.elements() {
        Some(n) if n <= MAX_ELEMENTS => return Ok(shape),
        Some(n) => format!("{n} values"),
        None => "more values than `usize` can count".to_string(),
    };
    Err(Error::new_spanned(
        &arg.expr,
        format!(
            "input shape {shape} is too large: kiln holds at most {MAX_ELEMENTS} values per sample, found {found}"
        ),
    ))
}
