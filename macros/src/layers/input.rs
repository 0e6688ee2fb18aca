//! `Input(shape, name = None)`: declares the per-sample input shape; not a layer of the
//! model (Keras 3's `summary()` does not list it either). The same shape rules apply to
//! `input_shape = (...)` and `input_dim = n` on the first layer.

use crate::args::{Bound, Signature};
use crate::ast::Arg;
use crate::shape::{Shape, MAX_ELEMENTS};
use syn::Error;

pub const SIGNATURE: Signature = Signature {
    params: &["shape"],
    required: 1,
};

/// The shape declared by `Input(shape = ...)`.
pub fn from_input(b: &Bound) -> Result<Shape, Error> {
    let arg = b.get("shape").ok_or_else(|| {
        Error::new_spanned(
            &b.call.call,
            "`Input` is missing its required argument `shape`",
        )
    })?;
    shape_arg(b, "shape", arg)
}

/// The shape declared by `input_shape = (...)` or `input_dim = n` on a first layer.
pub fn from_first_layer(b: &Bound) -> Option<Result<Shape, Error>> {
    if let Some(arg) = b.get("input_shape") {
        return Some(shape_arg(b, "input_shape", arg));
    }
    let arg = b.get("input_dim")?;
    Some(
        b.positive("input_dim")
            .and_then(|n| checked(Shape(vec![n]), arg)),
    )
}

fn shape_arg(b: &Bound, name: &str, arg: &Arg) -> Result<Shape, Error> {
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
