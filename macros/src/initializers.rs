//! Initializer names and calls of the DSL -> the runtime's `Initializer` constants:
//! `kernel_initializer = "he_normal"` or `kernel_initializer = RandomNormal(stddev = 0.1)`.

use crate::activations::f32_lit;
use crate::args::{bind_call, Signature};
use crate::ast::Arg;
use crate::callables::{lookup, Entry};
use crate::suggest::did_you_mean;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

/// (snake_case name, Keras class name, call arguments).
const TABLE: &[Entry] = &[
    ("zeros", "Zeros", &[]),
    ("ones", "Ones", &[]),
    ("constant", "Constant", &["value"]),
    ("random_uniform", "RandomUniform", &["minval", "maxval"]),
    ("random_normal", "RandomNormal", &["mean", "stddev"]),
    ("truncated_normal", "TruncatedNormal", &["mean", "stddev"]),
    ("glorot_uniform", "GlorotUniform", &[]),
    ("glorot_normal", "GlorotNormal", &[]),
    ("he_uniform", "HeUniform", &[]),
    ("he_normal", "HeNormal", &[]),
    ("lecun_uniform", "LecunUniform", &[]),
    ("lecun_normal", "LecunNormal", &[]),
    ("orthogonal", "Orthogonal", &["gain"]),
    (
        "variance_scaling",
        "VarianceScaling",
        &["scale", "mode", "distribution"],
    ),
];

/// Resolves an initializer argument to a runtime `Initializer` expression.
pub fn resolve(arg: &Arg) -> Result<TokenStream, Error> {
    let ((snake, _, params), call) = lookup(
        arg,
        TABLE,
        "initializer",
        "an initializer name like `\"glorot_uniform\"` or a call like `RandomNormal(stddev = 0.1)`",
    )?;
    let b = bind_call(
        &call,
        &Signature {
            params,
            required: 0,
        },
    )?;
    let one_of = |name: &str, value: String, arg: &Arg, allowed: &[&str]| {
        let list: Vec<String> = allowed.iter().map(|a| format!("`\"{a}\"`")).collect();
        let hint = did_you_mean(&value, allowed.iter().copied());
        Error::new_spanned(
            &arg.expr,
            format!(
                "expected one of {} for `{name}` of `{}`, found `{value:?}`{hint}",
                list.join(", "),
                b.class()
            ),
        )
    };
    let path = quote!(::kiln::__private::Initializer);
    let scaling = quote!(::kiln::__private::initializers);
    let f = |name: &str, default: f64| b.float(name, default).map(|v| f32_lit(v as f32));
    Ok(match snake {
        "constant" => {
            let v = f("value", 0.0)?;
            quote!(#path::Constant(#v))
        }
        "random_uniform" => {
            let (lo, hi) = (f("minval", -0.05)?, f("maxval", 0.05)?);
            quote!(#path::RandomUniform { minval: #lo, maxval: #hi })
        }
        "random_normal" | "truncated_normal" => {
            let (mean, stddev) = (f("mean", 0.0)?, f("stddev", 0.05)?);
            if snake == "random_normal" {
                quote!(#path::RandomNormal { mean: #mean, stddev: #stddev })
            } else {
                quote!(#path::TruncatedNormal { mean: #mean, stddev: #stddev })
            }
        }
        "orthogonal" => {
            let gain = f("gain", 1.0)?;
            quote!(#path::Orthogonal { gain: #gain })
        }
        "variance_scaling" => {
            let scale = f("scale", 1.0)?;
            let mode = match b.string("mode")? {
                None => quote!(FanIn),
                Some((s, _)) if s == "fan_in" => quote!(FanIn),
                Some((s, _)) if s == "fan_out" => quote!(FanOut),
                Some((s, _)) if s == "fan_avg" => quote!(FanAvg),
                Some((s, a)) => {
                    return Err(one_of("mode", s, a, &["fan_in", "fan_out", "fan_avg"]))
                }
            };
            let dist = match b.string("distribution")? {
                None => quote!(TruncatedNormal),
                Some((s, _)) if s == "truncated_normal" => quote!(TruncatedNormal),
                Some((s, _)) if s == "untruncated_normal" => quote!(UntruncatedNormal),
                Some((s, _)) if s == "uniform" => quote!(Uniform),
                Some((s, a)) => {
                    return Err(one_of(
                        "distribution",
                        s,
                        a,
                        &["truncated_normal", "untruncated_normal", "uniform"],
                    ))
                }
            };
            quote!(#path::VarianceScaling {
                scale: #scale,
                mode: #scaling::FanMode::#mode,
                distribution: #scaling::FanDistribution::#dist,
            })
        }
        "zeros" => quote!(#path::Zeros),
        "ones" => quote!(#path::Ones),
        fan_based => {
            // glorot / he / lecun are VarianceScaling with fixed arguments (Keras).
            let (scale, mode, dist) = match fan_based {
                "glorot_uniform" => (1.0f32, quote!(FanAvg), quote!(Uniform)),
                "glorot_normal" => (1.0, quote!(FanAvg), quote!(TruncatedNormal)),
                "he_uniform" => (2.0, quote!(FanIn), quote!(Uniform)),
                "he_normal" => (2.0, quote!(FanIn), quote!(TruncatedNormal)),
                "lecun_uniform" => (1.0, quote!(FanIn), quote!(Uniform)),
                _ => (1.0, quote!(FanIn), quote!(TruncatedNormal)),
            };
            let scale = f32_lit(scale);
            quote!(#path::VarianceScaling {
                scale: #scale,
                mode: #scaling::FanMode::#mode,
                distribution: #scaling::FanDistribution::#dist,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(tokens: TokenStream) -> Arg {
        let inv: crate::ast::Invocation =
            syn::parse2(quote!(M = Sequential([Dense(1, kernel_initializer = #tokens)]))).unwrap();
        inv.models[0].layers[0].args[1].clone()
    }

    fn error(tokens: TokenStream) -> String {
        resolve(&arg(tokens)).err().unwrap().to_string()
    }

    #[test]
    fn names_and_calls_resolve() {
        assert!(resolve(&arg(quote!("he_normal"))).is_ok());
        assert!(resolve(&arg(quote!(HeNormal()))).is_ok());
        let normal = resolve(&arg(quote!(RandomNormal(stddev = 0.5)))).unwrap();
        assert!(normal.to_string().contains("0.5f32"), "{normal}");
    }

    #[test]
    fn suggestions_keep_the_users_spelling() {
        let e = error(quote!("glorot_unifrom"));
        assert!(e.ends_with("did you mean `glorot_uniform`?"), "{e}");
        let e = error(quote!(GlorotUnifrom()));
        assert!(e.ends_with("did you mean `GlorotUniform`?"), "{e}");
        let e = error(quote!(he_normal));
        assert!(
            e.contains("help: names are strings: `\"he_normal\"`"),
            "{e}"
        );
    }

    #[test]
    fn calls_take_only_their_own_arguments() {
        let e = error(quote!(RandomNormal(name = "x")));
        assert!(e.contains("`RandomNormal` has no argument `name`"), "{e}");
        let e = error(quote!(Zeros(1)));
        assert!(
            e.contains("`Zeros` takes no arguments but 1 was given"),
            "{e}"
        );
        let e = error(quote!(VarianceScaling(mode = "fan_inn")));
        assert!(
            e.contains("found `\"fan_inn\"`; did you mean `fan_in`?"),
            "{e}"
        );
        let e = error(quote!(Constant(1e39)));
        assert!(
            e.contains("`value` of `Constant` must be a finite `f32`"),
            "{e}"
        );
    }
}
