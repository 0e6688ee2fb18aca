//! `Input(shape = None, batch_size = None, dtype = None, sparse = None, batch_shape = None,
//! name = None)`: declares the per-sample input shape; not a layer of the model (Keras 3's
//! `summary()` does not list it either). The same shape rules apply to `input_shape = (...)`
//! and `input_dim = n` on the first layer.
//!
//! A fixed batch size (`batch_size = B`, or `batch_shape = (B, ...)` in place of `shape`)
//! is what Keras requires of a model with `stateful = True` recurrent layers: their state
//! holds one row per sample of the batch (`check.rs` enforces it, `expand.rs` gives such a
//! model `predict_stateful`). Other models accept it and ignore it, as kiln fixes no batch
//! size (`predict_batch` takes any number of samples). `dtype` is a float or integer type
//! (ids for a first `Embedding` are integers in Keras, `f32` values in kiln's slice APIs);
//! `sparse` must be false.
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
    params: &["shape", "batch_size", "dtype", "sparse", "batch_shape"],
    required: 0,
};

/// What `Input(...)` declares.
pub struct Declared {
    pub shape: Shape,
    /// Timesteps `None` (variable; `shape` then holds 1 there).
    pub variable: bool,
    /// `batch_size = B` or `batch_shape = (B, ...)`.
    pub batch_size: Option<usize>,
}

/// The shape declared by `Input(shape = ...)` or `Input(batch_shape = ...)`, with the
/// batch size when one is fixed. Keras's rules: `shape` or `batch_shape`, not both, and
/// not `batch_size` with `batch_shape`.
pub fn from_input(b: &Bound) -> Result<Declared, Error> {
    check_dtype(b)?;
    if let Some(arg) = b.get("sparse") {
        if !matches!(arg.value, Value::None | Value::Bool(false)) {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected `False` or `None` for `sparse` of `Input`, found {}: kiln's inputs are dense",
                    arg.value.describe()
                ),
            ));
        }
    }
    let given = |name| b.get(name).filter(|a| !matches!(a.value, Value::None));
    let batch_size = match given("batch_size") {
        Some(_) => Some(b.positive("batch_size")?),
        None => None,
    };
    match (given("shape"), given("batch_shape")) {
        (Some(_), Some(both)) => Err(Error::new_spanned(
            &both.expr,
            "`Input` takes `shape` or `batch_shape`, not both",
        )),
        (Some(arg), None) => shape_arg(b, "shape", arg).map(|(shape, variable)| Declared {
            shape,
            variable,
            batch_size,
        }),
        (None, Some(arg)) => {
            if let Some(size) = given("batch_size") {
                return Err(Error::new_spanned(
                    &size.expr,
                    "`Input` takes `batch_size` or `batch_shape`, not both: `batch_shape` already holds the batch size",
                ));
            }
            batch_shape(b, arg)
        }
        (None, None) => Err(Error::new_spanned(
            &b.call.call,
            "`Input` needs `shape = (...)` (or `batch_shape = (batch, ...)`)",
        )),
    }
}

/// `batch_shape = (B, ...)`: `B` a positive integer or `None`, the rest as `shape`.
fn batch_shape(b: &Bound, arg: &Arg) -> Result<Declared, Error> {
    let (Value::Tuple(items) | Value::List(items)) = &arg.value else {
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected a tuple `(batch, ...)` for `batch_shape` of `Input`, found {}",
                arg.value.describe()
            ),
        ));
    };
    let Some((batch, rest)) = items.split_first().filter(|(_, rest)| !rest.is_empty()) else {
        return Err(Error::new_spanned(
            &arg.expr,
            "`batch_shape` of `Input` holds the batch size and at least one dimension, like `(1, 4)`",
        ));
    };
    let batch_size = match batch.value {
        Value::None => None,
        Value::Int(n @ 1..) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => {
            return Err(Error::new_spanned(
                &batch.expr,
                format!(
                    "expected a positive integer or `None` for the batch size in `batch_shape` of `Input`, found {}",
                    batch.value.describe()
                ),
            ))
        }
    };
    let per_sample = Arg {
        keyword: None,
        value: Value::Tuple(rest.to_vec()),
        expr: arg.expr.clone(),
    };
    shape_arg(b, "batch_shape", &per_sample).map(|(shape, variable)| Declared {
        shape,
        variable,
        batch_size,
    })
}

/// `dtype`: a float type, or an integer type (ids); kiln computes in `f32` either way.
fn check_dtype(b: &Bound) -> Result<(), Error> {
    const DTYPES: &[&str] = &[
        "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
        "uint16", "uint32", "uint64",
    ];
    let Some(arg) = b.get("dtype") else {
        return Ok(());
    };
    match &arg.value {
        Value::None => Ok(()),
        Value::Str(s) if DTYPES.contains(&s.as_str()) => Ok(()),
        other => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected a dtype name such as `\"float32\"` or `\"int32\"` for `dtype` of `Input`, found {}",
                other.describe()
            ),
        )),
    }
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
    let dims = b.int_items(arg, name, 1)?.unwrap_or_default();
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
