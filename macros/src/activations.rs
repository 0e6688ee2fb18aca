//! Activation names and arguments of the DSL -> the runtime's `Activation` constants.
//!
//! `activation = "relu"` uses Keras's defaults; the call form
//! `activation = leaky_relu(negative_slope = 0.1)` sets an activation's own arguments.

use crate::args::{bind_call, Bound, Signature};
use crate::ast::{Arg, LayerCall, Value};
use crate::suggest::did_you_mean;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

/// Every activation name, with the arguments its call form takes.
const TABLE: &[(&str, &[&str])] = &[
    ("linear", &[]),
    ("sigmoid", &[]),
    ("hard_sigmoid", &[]),
    ("hard_sigmoid_keras2", &[]),
    ("softmax", &[]),
    ("log_softmax", &[]),
    ("softplus", &[]),
    ("softsign", &[]),
    ("tanh", &[]),
    ("relu", &["negative_slope", "max_value", "threshold"]),
    ("relu6", &[]),
    ("leaky_relu", &["negative_slope"]),
    ("elu", &["alpha"]),
    ("selu", &[]),
    ("gelu", &["approximate"]),
    ("exponential", &[]),
    ("silu", &[]),
    ("swish", &[]),
    ("hard_silu", &[]),
    ("hard_swish", &[]),
    ("mish", &[]),
];

/// A checked activation: the runtime constant, and whether it is softmax-like.
#[derive(Clone)]
pub struct Resolved {
    pub tokens: TokenStream,
    pub name: String,
}

impl Resolved {
    pub fn linear() -> Resolved {
        Resolved {
            tokens: quote!(::kiln::__private::Activation::Linear),
            name: "linear".into(),
        }
    }

    /// Code applying the activation in place to the tensor `x` whose last axis has `last`
    /// values; nothing for `linear`.
    /// The activation applied in place to `x`, an `&mut [f32]` of whole vectors of `last`.
    pub fn apply_slice(&self, x: &TokenStream, last: usize) -> TokenStream {
        if self.name == "linear" {
            return quote!();
        }
        let act = &self.tokens;
        quote!(#act.apply(#x, #last);)
    }

    pub fn apply(&self, x: &TokenStream, last: usize) -> TokenStream {
        if self.name == "linear" {
            return quote!();
        }
        let act = &self.tokens;
        quote!(#act.apply(::kiln::__private::Tensor::values_mut(&mut #x), #last);)
    }
}

/// Resolves an `activation` argument: a name, a call with arguments, or `None` (linear).
pub fn resolve(arg: &Arg) -> Result<Resolved, Error> {
    let (name, call): (String, Option<(&syn::Ident, &[Arg])>) = match &arg.value {
        Value::Str(s) => (s.clone(), None),
        Value::None => return Ok(Resolved::linear()),
        Value::Call(f, args) => (f.to_string(), Some((f, args.as_slice()))),
        other => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected an activation name like `\"relu\"` or a call like `leaky_relu(negative_slope = 0.1)`, found {}{}",
                    other.describe(),
                    quote_hint(&arg.expr, TABLE.iter().map(|(n, _)| *n)),
                ),
            ))
        }
    };
    let Some(&(known, params)) = TABLE.iter().find(|(n, _)| *n == name) else {
        let hint = did_you_mean(&name, TABLE.iter().map(|(n, _)| *n));
        return Err(Error::new_spanned(
            &arg.expr,
            format!("unknown activation `{name}`{hint}"),
        ));
    };
    let tokens = match call {
        None => defaults(known),
        Some((ident, args)) => {
            let call = LayerCall {
                class: ident.clone(),
                args: args.to_vec(),
                call: arg.expr.clone(),
            };
            let signature = Signature {
                params,
                required: 0,
            };
            let bound = bind_call(&call, &signature)?;
            with_args(known, &bound)?
        }
    };
    Ok(Resolved {
        tokens,
        name: known.to_string(),
    })
}

/// "\n  help: ..." when `expr` is a bare name that would be valid as a string, like `relu`.
pub fn quote_hint<'a>(expr: &syn::Expr, names: impl IntoIterator<Item = &'a str>) -> String {
    let syn::Expr::Path(path) = expr else {
        return String::new();
    };
    match path.path.get_ident().map(|i| i.to_string()) {
        Some(name) if names.into_iter().any(|n| n == name) => {
            format!("\n  help: names are strings: `\"{name}\"`")
        }
        _ => String::new(),
    }
}

fn defaults(name: &str) -> TokenStream {
    let variant = |v: TokenStream| quote!(::kiln::__private::Activation::#v);
    match name {
        "linear" => variant(quote!(Linear)),
        "sigmoid" => variant(quote!(Sigmoid)),
        "hard_sigmoid" => variant(quote!(HardSigmoid)),
        "hard_sigmoid_keras2" => variant(quote!(HardSigmoidKeras2)),
        "softmax" => variant(quote!(Softmax)),
        "log_softmax" => variant(quote!(LogSoftmax)),
        "softplus" => variant(quote!(Softplus)),
        "softsign" => variant(quote!(Softsign)),
        "tanh" => variant(quote!(Tanh)),
        "relu" => relu_tokens(0.0, None, 0.0),
        "relu6" => variant(quote!(Relu6)),
        "leaky_relu" => variant(quote!(LeakyRelu {
            negative_slope: 0.2f32
        })),
        "elu" => variant(quote!(Elu { alpha: 1.0f32 })),
        "selu" => variant(quote!(Selu)),
        "gelu" => variant(quote!(Gelu { approximate: false })),
        "exponential" => variant(quote!(Exponential)),
        "silu" | "swish" => variant(quote!(Silu)),
        "hard_silu" | "hard_swish" => variant(quote!(HardSilu)),
        _ => variant(quote!(Mish)),
    }
}

/// `ReLU`'s runtime constant (shared with the `ReLU` layer).
pub fn relu_tokens(negative_slope: f32, max_value: Option<f32>, threshold: f32) -> TokenStream {
    let max = match max_value {
        Some(m) => {
            let m = f32_lit(m);
            quote!(::core::option::Option::Some(#m))
        }
        None => quote!(::core::option::Option::None),
    };
    let slope = f32_lit(negative_slope);
    let threshold = f32_lit(threshold);
    quote!(::kiln::__private::Activation::Relu { negative_slope: #slope, max_value: #max, threshold: #threshold })
}

fn with_args(name: &str, b: &Bound) -> Result<TokenStream, Error> {
    Ok(match name {
        "relu" => relu_tokens(
            b.float("negative_slope", 0.0)? as f32,
            b.optional_float("max_value")?.map(|m| m as f32),
            b.float("threshold", 0.0)? as f32,
        ),
        "leaky_relu" => {
            let s = f32_lit(b.float("negative_slope", 0.2)? as f32);
            quote!(::kiln::__private::Activation::LeakyRelu { negative_slope: #s })
        }
        "elu" => {
            let a = f32_lit(b.float("alpha", 1.0)? as f32);
            quote!(::kiln::__private::Activation::Elu { alpha: #a })
        }
        "gelu" => {
            let approximate = b.boolean("approximate", false)?;
            quote!(::kiln::__private::Activation::Gelu { approximate: #approximate })
        }
        other => defaults(other),
    })
}

/// An `f32` literal; the getters only hand out finite values.
pub fn f32_lit(v: f32) -> TokenStream {
    if v.is_finite() {
        let lit = proc_macro2::Literal::f32_suffixed(v);
        quote!(#lit)
    } else {
        quote!(::core::f32::NAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(tokens: TokenStream) -> Arg {
        let inv: crate::ast::Invocation =
            syn::parse2(quote!(M = Sequential([Dense(1, activation = #tokens)]))).unwrap();
        let layer = &inv.models[0].layers[0];
        layer.args[1].clone()
    }

    #[test]
    fn names_and_calls_resolve() {
        assert_eq!(resolve(&arg(quote!("relu"))).unwrap().name, "relu");
        assert_eq!(resolve(&arg(quote!(None))).unwrap().name, "linear");
        let leaky = resolve(&arg(quote!(leaky_relu(negative_slope = 0.1)))).unwrap();
        assert!(leaky.tokens.to_string().contains("0.1f32"));
    }

    #[test]
    fn unknown_names_suggest_neighbours() {
        let err = resolve(&arg(quote!("rleu"))).err().unwrap().to_string();
        assert!(
            err.contains("unknown activation `rleu`; did you mean `relu`"),
            "{err}"
        );
        let err = resolve(&arg(quote!(elu(beta = 1.0))))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`elu` has no argument `beta`"), "{err}");
        // Activation calls take only their own arguments, not a layer's `name`.
        let err = resolve(&arg(quote!(elu(name = "x"))))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`elu` has no argument `name`"), "{err}");
        let err = resolve(&arg(quote!(relu))).err().unwrap().to_string();
        assert!(err.contains("help: names are strings: `\"relu\"`"), "{err}");
    }
}
