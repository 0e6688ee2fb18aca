//! Binding a layer call's arguments to its Keras signature, like Python does: positional
//! arguments in order, then keywords; unknown, duplicate and missing arguments are errors.
//! [`Bound`]'s getters then read each argument as the type the layer wants, with Keras's
//! default when it is absent, and a spanned error when it has the wrong type or range.

use crate::ast::{Arg, LayerCall, Value};
use crate::suggest::did_you_mean;
use proc_macro2::TokenStream;
use quote::ToTokens;
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

/// Matches `call`'s arguments to `signature` plus the keywords every layer takes
/// ([`COMMON`]), reporting every problem found.
pub fn bind<'a>(call: &'a LayerCall, signature: &Signature) -> Result<Bound<'a>, Error> {
    bind_with(call, signature, COMMON)
}

/// [`bind`] for a call that is not a layer (an activation or initializer call such as
/// `leaky_relu(negative_slope = 0.1)`): only `signature`'s own parameters are accepted.
pub fn bind_call<'a>(call: &'a LayerCall, signature: &Signature) -> Result<Bound<'a>, Error> {
    bind_with(call, signature, &[])
}

fn bind_with<'a>(
    call: &'a LayerCall,
    signature: &Signature,
    common: &'static [&'static str],
) -> Result<Bound<'a>, Error> {
    let class = call.class.to_string();
    let mut errors = Errors::default();
    let mut values: Vec<(&'static str, &'a Arg)> = Vec::new();
    let mut seen_keyword = false;
    let positional = call.args.iter().filter(|a| a.keyword.is_none()).count();
    let mut position = 0;
    let mut extra: Vec<&Arg> = Vec::new();
    for arg in &call.args {
        match &arg.keyword {
            None if seen_keyword => errors.push(Error::new_spanned(
                &arg.expr,
                "positional argument follows keyword argument",
            )),
            None => {
                match signature.params.get(position) {
                    Some(name) => values.push((name, arg)),
                    None => extra.push(arg),
                }
                position += 1;
            }
            Some(keyword) => {
                seen_keyword = true;
                let key = keyword.to_string();
                let known = signature
                    .params
                    .iter()
                    .chain(common)
                    .find(|p| **p == key)
                    .copied();
                match known {
                    None => {
                        let all = signature.params.iter().chain(common).copied();
                        let hint = did_you_mean(&key, all);
                        let list = expected_list(signature, common);
                        errors.push(Error::new(
                            keyword.span(),
                            format!("`{class}` has no argument `{key}`{hint}{list}"),
                        ));
                    }
                    Some(name) if values.iter().any(|(n, _)| *n == name) => {
                        errors.push(Error::new(
                            keyword.span(),
                            format!("argument `{name}` of `{class}` given more than once"),
                        ));
                    }
                    Some(name) => values.push((name, arg)),
                }
            }
        }
    }
    if let (Some(first), Some(last)) = (extra.first(), extra.last()) {
        // One error over all the surplus arguments, worded as Python words it.
        let range: TokenStream = [&first.expr, &last.expr]
            .into_iter()
            .map(ToTokens::to_token_stream)
            .collect();
        let takes = match signature.params.len() {
            0 if common.is_empty() => format!("`{class}` takes no arguments"),
            0 => format!("`{class}` takes no positional arguments"),
            1 => format!("`{class}` takes 1 positional argument"),
            n => format!("`{class}` takes at most {n} positional arguments"),
        };
        let were = if positional == 1 { "was" } else { "were" };
        errors.push(Error::new_spanned(
            range,
            format!("{takes} but {positional} {were} given"),
        ));
    }
    for name in &signature.params[..signature.required.min(signature.params.len())] {
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

/// "\n  expected one of: `a`, `b`" or, for a call without parameters, that it takes none.
fn expected_list(signature: &Signature, common: &[&str]) -> String {
    let all: Vec<String> = signature
        .params
        .iter()
        .chain(common)
        .map(|p| format!("`{p}`"))
        .collect();
    match all.as_slice() {
        [] => "; it takes no arguments".to_string(),
        [one] => format!("\n  expected: {one}"),
        _ => format!("\n  expected one of: {}", all.join(", ")),
    }
}

impl<'a> Bound<'a> {
    pub fn class(&self) -> String {
        self.call.class.to_string()
    }

    pub fn get(&self, name: &str) -> Option<&'a Arg> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }

    /// Checks the arguments whose meaning is the same in every Keras layer and does not
    /// depend on the input shape (Keras validates them in the constructor): `units`,
    /// `use_bias`, `*activation` and `*_initializer`. The checker runs this for a layer whose
    /// input shape is unknown after an earlier error, so these mistakes still show.
    pub fn check_shape_free(&self) -> Result<(), Error> {
        let mut errors = Errors::default();
        for (name, arg) in &self.values {
            let checked = match *name {
                "units" => self.positive(name).map(|_| ()),
                "use_bias" => self.boolean(name, true).map(|_| ()),
                n if n == "activation" || n.ends_with("_activation") => {
                    crate::activations::resolve(arg).map(|_| ())
                }
                n if n.ends_with("_initializer") => crate::initializers::resolve(arg).map(|_| ()),
                n if n.ends_with("_regularizer") => crate::regularizers::resolve(arg).map(|_| ()),
                _ => Ok(()),
            };
            errors.ok(checked);
        }
        errors.into_result()
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
    // Unused by the layers so far; kept for integer options such as axes.
    #[allow(dead_code)]
    pub fn int_at_least(&self, name: &str, min: i128, default: i128) -> Result<i128, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(arg) => int_value(arg, &Place::Arg(name), min, &self.class()),
        }
    }

    /// A positive integer that must be present (the binder already checked presence).
    pub fn positive(&self, name: &str) -> Result<usize, Error> {
        let Some(arg) = self.get(name) else {
            return Err(Error::new_spanned(
                &self.call.call,
                format!(
                    "`{}` is missing its required argument `{name}`",
                    self.class()
                ),
            ));
        };
        let value = int_value(arg, &Place::Arg(name), 1, &self.class())?;
        usize::try_from(value).map_err(|_| {
            Error::new_spanned(
                &arg.expr,
                format!(
                    "`{name}` of `{}` is too large, found `{value}`",
                    self.class()
                ),
            )
        })
    }

    /// A number (integers accepted, as in Python) that fits a finite `f32`, or `default`.
    pub fn float(&self, name: &str, default: f64) -> Result<f64, Error> {
        let Some(arg) = self.get(name) else {
            return Ok(default);
        };
        let value = match arg.value {
            Value::Float(f) => f,
            Value::Int(i) => i as f64,
            _ => return Err(self.type_error(arg, name, "a number")),
        };
        // Weights and constants are `f32`: a literal beyond its range would become infinity.
        if (value as f32).is_finite() {
            Ok(value)
        } else {
            Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "`{name}` of `{}` must be a finite `f32`, found `{value:e}`",
                    self.class()
                ),
            ))
        }
    }

    /// A finite number `>= 0`, or `default` when absent. Keras's constructors raise
    /// `ValueError` for negative slopes, thresholds, rates and regularization factors.
    pub fn non_negative_float(&self, name: &str, default: f64) -> Result<f64, Error> {
        let v = self.float(name, default)?;
        match self.get(name) {
            Some(arg) if v < 0.0 => {
                let shown = match arg.value {
                    Value::Int(i) => i.to_string(),
                    Value::Float(f) => format!("{f:?}"),
                    _ => arg.value.describe(),
                };
                Err(Error::new_spanned(
                    &arg.expr,
                    format!(
                        "`{name}` of `{}` must be at least 0, found `{shown}`",
                        self.class()
                    ),
                ))
            }
            _ => Ok(v),
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
        match self.get(name) {
            Some(arg) => self.int_items(arg, name, min),
            None => Ok(None),
        }
    }

    /// [`Bound::int_tuple`] of a given argument (`name` for messages): a part of one, such
    /// as the per-sample dimensions of `Input`'s `batch_shape`.
    pub fn int_items(&self, arg: &Arg, name: &str, min: i128) -> Result<Option<Vec<i128>>, Error> {
        match &arg.value {
            Value::None => Ok(None),
            Value::Tuple(items) | Value::List(items) => {
                let mut errors = Errors::default();
                let values: Vec<i128> = items
                    .iter()
                    .filter_map(|item| {
                        errors.ok(int_value(item, &Place::Item(name), min, &self.class()))
                    })
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

/// Where an integer sits, for messages: an argument itself, or one item of a tuple argument.
enum Place<'n> {
    Arg(&'n str),
    Item(&'n str),
}

fn int_value(arg: &Arg, place: &Place, min: i128, class: &str) -> Result<i128, Error> {
    let wanted = match min {
        1 => "a positive integer".to_string(),
        0 => "a non-negative integer".to_string(),
        m => format!("an integer of at least {m}"),
    };
    match (&arg.value, place) {
        (Value::Int(i), _) if *i >= min => Ok(*i),
        (Value::Int(i), Place::Arg(name)) => Err(Error::new_spanned(
            &arg.expr,
            format!("`{name}` of `{class}` must be {wanted}, found `{i}`"),
        )),
        (Value::Int(i), Place::Item(name)) => Err(Error::new_spanned(
            &arg.expr,
            format!("each value in `{name}` of `{class}` must be {wanted}, found `{i}`"),
        )),
        (value, Place::Arg(name)) => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected an integer for `{name}` of `{class}`, found {}",
                value.describe()
            ),
        )),
        (value, Place::Item(name)) => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected an integer in `{name}` of `{class}`, found {}",
                value.describe()
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
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
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
        let e = bind_errors(quote::quote!(
            M = Sequential([Dense(units = 3, units = 4, activaton = "relu")])
        ));
        assert!(
            e.contains("argument `units` of `Dense` given more than once"),
            "{e}"
        );
        assert!(e.contains("did you mean `activation`"), "{e}");
        let e = bind_errors(quote::quote!(M = Sequential([Dense(use_bias = True, 3)])));
        assert!(
            e.contains("positional argument follows keyword argument"),
            "{e}"
        );
        assert!(e.contains("missing its required argument `units`"), "{e}");
    }

    #[test]
    fn surplus_positional_arguments_are_one_error() {
        let e = bind_errors(quote::quote!(M = Sequential([Dense(1, None, True, 4, 5)])));
        assert_eq!(
            e, "`Dense` takes at most 3 positional arguments but 5 were given",
            "{e}"
        );
    }

    #[test]
    fn getters_refuse_values_that_would_wrap_or_overflow() {
        let inv: Invocation =
            syn::parse_quote!(M = Sequential([Dense(100000000000000000000, activation = 1e39)]));
        let b = bind(first_layer(&inv), &DENSE).unwrap();
        let e = b.positive("units").unwrap_err().to_string();
        assert!(e.contains("`units` of `Dense` is too large"), "{e}");
        let e = b.float("activation", 0.0).unwrap_err().to_string();
        assert!(e.contains("must be a finite `f32`, found `1e39`"), "{e}");
    }

    #[test]
    fn shape_free_arguments_are_checked_by_name() {
        let inv: Invocation = syn::parse_quote!(M = Sequential([Dense(0, activation = "rleu")]));
        let b = bind(first_layer(&inv), &DENSE).unwrap();
        let e: Vec<String> = b
            .check_shape_free()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[1].starts_with("unknown activation `rleu`"), "{e:?}");
    }
}
