//! Regularizer names and calls of the DSL -> the runtime's `Regularizer` constants:
//! `kernel_regularizer = l2(0.01)`, `"l1"`, or `L1L2(l1 = 0.01, l2 = 0.001)`, with Keras 3's
//! defaults (`l1`/`l2` 0.01; `L1L2` 0 and 0).

use crate::activations::f32_lit;
use crate::args::{bind_call, Signature};
use crate::ast::Arg;
use crate::callables::{lookup, Entry};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

const TABLE: &[Entry] = &[
    ("l1", "L1", &["l1"]),
    ("l2", "L2", &["l2"]),
    ("l1_l2", "L1L2", &["l1", "l2"]),
];

/// Statements adding an `activity_regularizer`'s loss of the output `y` (a batch tensor,
/// `per_sample` values per sample) to `pass`; nothing without one. Shared by every layer
/// that takes the argument.
pub fn activity_loss(regularizer: &Option<TokenStream>, per_sample: usize) -> TokenStream {
    match regularizer {
        Some(reg) => quote!(::kiln::__private::add_activity_loss(
            pass,
            &#reg,
            ::kiln::__private::Tensor::values(&y),
            #per_sample
        );),
        None => quote!(),
    }
}

/// A `Regularizer` expression for `arg`; `None` for Python's `None`.
pub fn resolve(arg: &Arg) -> Result<Option<TokenStream>, Error> {
    if matches!(arg.value, crate::ast::Value::None) {
        return Ok(None);
    }
    let ((snake, _, params), call) = lookup(
        arg,
        TABLE,
        "regularizer",
        "a regularizer name like `\"l2\"` or a call like `l2(0.01)`",
    )?;
    let b = bind_call(
        &call,
        &Signature {
            params,
            required: 0,
        },
    )?;
    let coefficient = |name: &str, default: f64| -> Result<TokenStream, Error> {
        Ok(f32_lit(b.non_negative_float(name, default)? as f32))
    };
    let path = quote!(::kiln::__private::Regularizer);
    Ok(Some(match snake {
        "l1" => {
            let l1 = coefficient("l1", 0.01)?;
            quote!(#path::L1(#l1))
        }
        "l2" => {
            let l2 = coefficient("l2", 0.01)?;
            quote!(#path::L2(#l2))
        }
        _ => {
            let (l1, l2) = (coefficient("l1", 0.0)?, coefficient("l2", 0.0)?);
            quote!(#path::L1L2 { l1: #l1, l2: #l2 })
        }
    }))
}
