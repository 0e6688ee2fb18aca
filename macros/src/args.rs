//! Binding a layer call's arguments to its Keras signature, like Python does: positional
//! arguments in order, then keywords; unknown, duplicate and missing arguments are errors.
//! [`Bound`]'s getters then read each argument as the type the layer wants, with Keras's
//! default when it is absent, and a spanned error when it has the wrong type or range.

use crate::ast::{Arg, LayerCall, Value};
use crate::suggest::did_you_mean;
use syn::Error;

/// Keyword arguments every layer takes (Keras's base `Layer`).
pub const COMMON: &[&str] = &["name", "input_shape", "input_dim"];

/// A layer's parameters in Keras's order; the first `required` must be given.
pub struct Signature {
    pub params: &'static [&'static str],
    pub required: usize,
}

/// A layer call's arguments matched to parameter names.
pub struct Bound<'a> {
    pub call: &'a LayerCall,
    values: Vec<(&'static str, &'a Arg)>,
}

/// An error accumulator: independent errors are reported together.
#[derive(Default)]
pub struct Errors(Option<Error>);

impl Errors {
    pub fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(e) => e.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Keeps the value of `result`, recording its error.
    pub fn ok<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    pub fn into_result(self) -> Result<(), Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Matches `call`'s arguments to `signature`, reporting every problem found.
pub fn bind<'a>(call: &'a LayerCall, signature: &Signature) -> Result<Bound<'a>, Error> {
    let class = call.class.to_string();
    let mut errors = Errors::default();
    let mut values: Vec<(&'static str, &'a Arg)> = Vec::new();
    let mut seen_keyword = false;
    let mut position = 0;
    for arg in &call.args {
        match &arg.keyword {
            None if seen_keyword => errors.push(Error::new_spanned(
                &arg.expr,
                "positional argument follows keyword argument",
            )),
            None => {
                match signature.params.get(position) {
                    Some(name) => values.push((name, arg)),
                    None => errors.push(Error::new_spanned(
                        &arg.expr,
                        format!(
                            "`{class}` takes at most {} positional argument{}, found {}",
                            signature.params.len(),
                            if signature.params.len() == 1 { "" } else { "s" },
                            position + 1
                        ),
                    )),
                }
                position += 1;
            }
            Some(keyword) => {
                seen_keyword = true;
                let key = keyword.to_string();
                let known = signature
                    .params
                    .iter()
                    .chain(COMMON)
                    .find(|p| **p == key)
                    .copied();
                match known {
                    None => {
                        let all = signature.params.iter().chain(COMMON).copied();
                        let hint = did_you_mean(&key, all);
                        let list = expected_list(signature);
                        errors.push(Error::new(
                            keyword.span(),
                            format!("`{class}` has no argument `{key}`{hint}\n  expected one of: {list}"),
                        ));
                    }
                    Some(name) if values.iter().any(|(n, _)| *n == name) => {
                        errors.push(Error::new(
                            keyword.span(),
                            format!("argument `{name}` given more than once"),
                        ));
                    }
                    Some(name) => values.push((name, arg)),
                }
            }
        }
    }
    for name in &signature.params[..signature.required] {
        if !values.iter().any(|(n, _)| n == name) {
            errors.push(Error::new_spanned(
                &call.call,
                format!("`{class}` is missing its required argument `{name}`"),
            ));
        }
    }
    errors.into_result()?;
    Ok(Bound { call, values })
}

fn expected_list(signature: &Signature) -> String {
    let all: Vec<String> = signature
        .params
        .iter()
        .chain(COMMON)
        .map(|p| format!("`{p}`"))
        .collect();
    all.join(", ")
}

impl<'a> Bound<'a> {
    pub fn class(&self) -> String {
        self.call.class.to_string()
    }

    pub fn get(&self, name: &str) -> Option<&'a Arg> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    fn type_error(&self, arg: &Arg, name: &str, expected: &str) -> Error {
        Error::new_spanned(
            &arg.expr,
            format!(
                "expected {expected} for `{name}` of `{}`, found {}",
                self.class(),
                arg.value.describe()
            ),
        )
    }

    /// An integer in `min..`, or `default` when absent.
    pub fn int_at_least(&self, name: &str, min: i128, default: i128) -> Result<i128, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(arg) => int_value(arg, name, min, &self.class()),
        }
    }

    /// A positive integer that must be present (the binder already checked presence).
    pub fn positive(&self, name: &str) -> Result<usize, Error> {
        match self.get(name) {
            None => Err(Error::new_spanned(
                &self.call.call,
                format!("`{}` is missing its required argument `{name}`", self.class()),
            )),
            Some(arg) => int_value(arg, name, 1, &self.class()).map(|v| v as usize),
        }
    }

    /// A number (integers accepted, as in Python), or `default`.
    pub fn float(&self, name: &str, default: f64) -> Result<f64, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(arg) => match arg.value {
                Value::Float(f) => Ok(f),
                Value::Int(i) => Ok(i as f64),
                _ => Err(self.type_error(arg, name, "a number")),
            },
        }
    }

    /// A number or `None`; absent means `None`.
    pub fn optional_float(&self, name: &str) -> Result<Option<f64>, Error> {
        match self.get(name).map(|a| &a.value) {
            None | Some(Value::None) => Ok(None),
            Some(_) => self.float(name, 0.0).map(Some),
        }
    }

    /// `True`/`False` (or `true`/`false`), or `default`.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(arg) => match arg.value {
                Value::Bool(b) => Ok(b),
                _ => Err(self.type_error(arg, name, "`True` or `False`")),
            },
        }
    }

    /// A string literal, or `None` when absent.
    pub fn string(&self, name: &str) -> Result<Option<(String, &'a Arg)>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(arg) => match &arg.value {
                Value::Str(s) => Ok(Some((s.clone(), arg))),
                _ => Err(self.type_error(arg, name, "a string")),
            },
        }
    }

    /// A tuple or list of integers (each `>= min`), or `None` when absent or `None`.
    pub fn int_tuple(&self, name: &str, min: i128) -> Result<Option<Vec<i128>>, Error> {
        let Some(arg) = self.get(name) else {
            return Ok(None);
        };
        match &arg.value {
            Value::None => Ok(None),
            Value::Tuple(items) | Value::List(items) => {
                let mut errors = Errors::default();
                let values: Vec<i128> = items
                    .iter()
                    .filter_map(|item| errors.ok(int_value(item, name, min, &self.class())))
                    .collect();
                errors.into_result()?;
                Ok(Some(values))
            }
            Value::Int(i) => Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected a tuple for `{name}` of `{}`, found the integer `{i}`\n  help: a one-dimensional shape is written `({i},)`",
                    self.class()
                ),
            )),
            _ => Err(self.type_error(arg, name, "a tuple of integers")),
        }
    }
}

fn int_value(arg: &Arg, name: &str, min: i128, class: &str) -> Result<i128, Error> {
    match arg.value {
        Value::Int(i) if i >= min => Ok(i),
        Value::Int(i) => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "`{name}` of `{class}` must be {}, found `{i}`",
                match min {
                    1 => "a positive integer".to_string(),
                    0 => "a non-negative integer".to_string(),
                    m => format!("an integer of at least {m}"),
                }
            ),
        )),
        _ => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected an integer for `{name}` of `{class}`, found {}",
                arg.value.describe()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Invocation;

    const DENSE: Signature = Signature {
        params: &["units", "activation", "use_bias"],
        required: 1,
    };

    fn first_layer(inv: &Invocation) -> &LayerCall {
        &inv.models[0].layers[0]
    }

    fn bind_errors(tokens: proc_macro2::TokenStream) -> String {
        let inv: Invocation = syn::parse2(tokens).unwrap();
        match bind(first_layer(&inv), &DENSE) {
            Ok(_) => String::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join(" | "),
        }
    }

    #[test]
    fn binds_positional_then_keyword() {
        let inv: Invocation = syn::parse_quote!(M = Sequential([Dense(3, use_bias = False)]));
        let b = bind(first_layer(&inv), &DENSE).unwrap();
        assert_eq!(b.positive("units").unwrap(), 3);
        assert!(!b.boolean("use_bias", true).unwrap());
        assert!(b.string("activation").unwrap().is_none());
    }

    #[test]
    fn reports_every_binding_problem_at_once() {
        let e = bind_errors(quote::quote!(M = Sequential([Dense(units = 3, units = 4, activaton = "relu")])));
        assert!(e.contains("argument `units` given more than once"), "{e}");
        assert!(e.contains("did you mean `activation`"), "{e}");
        let e = bind_errors(quote::quote!(M = Sequential([Dense(use_bias = True, 3)])));
        assert!(e.contains("positional argument follows keyword argument"), "{e}");
        assert!(e.contains("missing its required argument `units`"), "{e}");
    }
}
