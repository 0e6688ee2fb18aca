//! Constraint names and calls of the DSL -> the runtime's `Constraint` constants:
//! `kernel_constraint = max_norm(2.0)`, `"non_neg"`, `UnitNorm(axis = 0)`,
//! `MinMaxNorm(min_value = 0.0, max_value = 1.0, rate = 1.0, axis = 0)`, with Keras 3's
//! defaults. `axis` counts over the weight's Keras shape (negative from the end) and is
//! checked against the weight's rank here.

use crate::activations::f32_lit;
use crate::args::{bind_call, Signature};
use crate::ast::Arg;
use crate::callables::{lookup, Entry};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

const TABLE: &[Entry] = &[
    ("max_norm", "MaxNorm", &["max_value", "axis"]),
    (
        "min_max_norm",
        "MinMaxNorm",
        &["min_value", "max_value", "rate", "axis"],
    ),
    ("non_neg", "NonNeg", &[]),
    ("unit_norm", "UnitNorm", &["axis"]),
];

/// A `Constraint` expression for `arg` applied to a weight of rank `rank`; `None` for
/// Python's `None`.
pub fn resolve(arg: &Arg, rank: usize) -> Result<Option<TokenStream>, Error> {
    if matches!(arg.value, crate::ast::Value::None) {
        return Ok(None);
    }
    let ((snake, _, params), call) = lookup(
        arg,
        TABLE,
        "constraint",
        "a constraint name like `\"non_neg\"` or a call like `max_norm(2.0)`",
    )?;
    let b = bind_call(
        &call,
        &Signature {
            params,
            required: 0,
        },
    )?;
    let non_negative =
        |name: &str, default: f64| b.non_negative_float(name, default).map(|v| v as f32);
    let axis = || -> Result<usize, Error> {
        let Some(at) = b.get("axis") else {
            return Ok(0);
        };
        let crate::ast::Value::Int(a) = at.value else {
            return Err(Error::new_spanned(
                &at.expr,
                format!(
                    "expected an integer for `axis` of `{}`, found {}",
                    b.class(),
                    at.value.describe()
                ),
            ));
        };
        let r = rank as i128;
        if a >= r || a < -r {
            return Err(Error::new_spanned(
                &at.expr,
                format!(
                    "`axis` of `{}` must be in {}..{} for a weight of rank {rank}, found `{a}`",
                    b.class(),
                    -r,
                    r
                ),
            ));
        }
        Ok(if a < 0 { (a + r) as usize } else { a as usize })
    };
    let path = quote!(::kiln::__private::Constraint);
    Ok(Some(match snake {
        "max_norm" => {
            let max = f32_lit(non_negative("max_value", 2.0)?);
            let axis = axis()?;
            quote!(#path::MaxNorm { max_value: #max, axis: #axis })
        }
        "min_max_norm" => {
            let min = non_negative("min_value", 0.0)?;
            let max = non_negative("max_value", 1.0)?;
            if min > max {
                return Err(Error::new_spanned(
                    &arg.expr,
                    format!(
                        "`min_value` ({min}) of `MinMaxNorm` is larger than `max_value` ({max})"
                    ),
                ));
            }
            let rate = f32_lit(non_negative("rate", 1.0)?);
            let (min, max, axis) = (f32_lit(min), f32_lit(max), axis()?);
            quote!(#path::MinMaxNorm { min_value: #min, max_value: #max, rate: #rate, axis: #axis })
        }
        "non_neg" => quote!(#path::NonNeg),
        _ => {
            let axis = axis()?;
            quote!(#path::UnitNorm { axis: #axis })
        }
    }))
}
