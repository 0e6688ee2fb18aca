//! `lookup`: the shared first step of resolving a "callable" argument — an object Keras
//! accepts by name or as a call, such as `kernel_regularizer = l2(0.01)` or
//! `kernel_constraint = "non_neg"`. It finds the entry in the kind's table (snake_case or
//! Keras class spelling) and returns the call to bind against the entry's parameters.

use crate::activations::quote_hint;
use crate::ast::{Arg, LayerCall, Value};
use crate::suggest::did_you_mean;
use syn::Error;

/// One entry of a table: snake_case name, Keras class name, call parameters in order.
pub type Entry = (&'static str, &'static str, &'static [&'static str]);

/// The table entry `arg` names, and its arguments as a call (empty for a bare name).
/// `kind` ("regularizer") and `expected` ("a regularizer name like ... or a call like ...")
/// word the errors.
pub fn lookup(
    arg: &Arg,
    table: &'static [Entry],
    kind: &str,
    expected: &str,
) -> Result<(Entry, LayerCall), Error> {
    let names = || table.iter().flat_map(|(s, c, _)| [*s, *c]);
    let (name, call) = match &arg.value {
        Value::Str(s) => (s.clone(), None),
        Value::Call(f, args) => (f.to_string(), Some((f, args.as_slice()))),
        other => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected {expected}, found {}{}",
                    other.describe(),
                    quote_hint(&arg.expr, names()),
                ),
            ))
        }
    };
    let Some(&entry) = table.iter().find(|(s, c, _)| *s == name || *c == name) else {
        let capitalised = name.starts_with(|c: char| c.is_ascii_uppercase());
        let candidates = table
            .iter()
            .map(|(s, c, _)| if capitalised { *c } else { *s });
        let hint = did_you_mean(&name, candidates);
        return Err(Error::new_spanned(
            &arg.expr,
            format!("unknown {kind} `{name}`{hint}"),
        ));
    };
    let call = LayerCall {
        class: match call {
            Some((ident, _)) => ident.clone(),
            None => syn::Ident::new(entry.1, proc_macro2::Span::call_site()),
        },
        args: call.map_or(&[][..], |(_, args)| args).to_vec(),
        call: arg.expr.clone(),
    };
    Ok((entry, call))
}
