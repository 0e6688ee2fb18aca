//! Initializer names and calls of the DSL -> the runtime's `Initializer` constants:
//! `kernel_initializer = "he_normal"` or `kernel_initializer = RandomNormal(stddev = 0.1)`.

use crate::args::{bind, Signature};
use crate::ast::{Arg, LayerCall, Value};
use crate::activations::f32_lit;
use crate::suggest::did_you_mean;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

/// (snake_case name, Keras class name, call arguments).
const TABLE: &[(&str, &str, &[&str])] = &[
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
    ("variance_scaling", "VarianceScaling", &["scale", "mode", "distribution"]),
];

/// Resolves an initializer argument to a runtime `Initializer` expression.
pub fn resolve(arg: &Arg) -> Result<TokenStream, Error> {
    let (name, call_args) = match &arg.value {
        Value::Str(s) => (s.clone(), None),
        Value::Call(f, args) => (f.to_string(), Some(args.as_slice())),
        other => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected an initializer name like `\"glorot_uniform\"` or a call like `RandomNormal(stddev = 0.1)`, found {}",
                    other.describe()
                ),
            ))
        }
    };
    let Some(&(snake, _, params)) = TABLE.iter().find(|(s, c, _)| *s == name || *c == name) else {
        let names = TABLE.iter().flat_map(|(s, c, _)| [*s, *c]);
        let hint = did_you_mean(&name, names);
        return Err(Error::new_spanned(
            &arg.expr,
            format!("unknown initializer `{name}`{hint}"),
        ));
    };
    let call = LayerCall {
        class: syn::Ident::new(&name, proc_macro2::Span::call_site()),
        args: call_args.unwrap_or(&[]).to_vec(),
        call: arg.expr.clone(),
    };
    let b = bind(
        &call,
        &Signature {
            params,
            required: 0,
        },
    )?;
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
            let mode = match b.string("mode")?.map(|(s, a)| (s, a.expr.clone())) {
                None => quote!(FanIn),
                Some((s, _)) if s == "fan_in" => quote!(FanIn),
                Some((s, _)) if s == "fan_out" => quote!(FanOut),
                Some((s, _)) if s == "fan_avg" => quote!(FanAvg),
                Some((s, e)) => {
                    return Err(Error::new_spanned(
                        e,
                        format!("`mode` must be \"fan_in\", \"fan_out\" or \"fan_avg\", found {s:?}"),
                    ))
                }
            };
            let dist = match b.string("distribution")?.map(|(s, a)| (s, a.expr.clone())) {
                None => quote!(TruncatedNormal),
                Some((s, _)) if s == "truncated_normal" => quote!(TruncatedNormal),
                Some((s, _)) if s == "untruncated_normal" => quote!(UntruncatedNormal),
                Some((s, _)) if s == "uniform" => quote!(Uniform),
                Some((s, e)) => {
                    return Err(Error::new_spanned(
                        e,
                        format!("`distribution` must be \"truncated_normal\", \"untruncated_normal\" or \"uniform\", found {s:?}"),
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
