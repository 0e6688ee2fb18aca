//! `PReLU(alpha_initializer = "zeros", alpha_regularizer = None, alpha_constraint = None,
//! shared_axes = None)`: `f(x) = x` for `x >= 0`, `alpha * x` otherwise, with a learned
//! `alpha` per value (Keras computes `relu(x) - alpha * relu(-x)`, the same numbers).
//!
//! Weight `alpha` has the input's per-sample shape with every axis of `shared_axes` set to 1,
//! exactly as Keras builds it: on a `(4, 5, 3)` input, `shared_axes = [1, 2]` gives alpha
//! `(1, 1, 3)`, one slope per channel. `shared_axes` holds Keras axes (1 is the first axis
//! after the batch), as a list, a tuple or a single integer.
//!
//! Regularizers and constraints only act in training, which kiln does not do yet, so
//! `alpha_regularizer` and `alpha_constraint` accept only `None`.
//!
//! Shape rule: output shape = input shape, any rank. Masks pass through.

use super::reshape::input_phrase;
use super::{Forward, Layer, LayerInput, LayerKind, MaskRule, Weight};
use crate::args::{Bound, Errors, Signature};
use crate::ast::{Arg, Value};
use crate::initializers;
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "PReLU",
    signature: Signature {
        params: &[
            "alpha_initializer",
            "alpha_regularizer",
            "alpha_constraint",
            "shared_axes",
        ],
        required: 0,
    },
    build,
};

struct PReLU {
    input: Shape,
    alpha: Shape,
    alpha_initializer: TokenStream,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let alpha_initializer = match b.get("alpha_initializer") {
        Some(arg) => errors.ok(initializers::resolve(arg)),
        None => errors.ok(initializers::resolve(&Arg {
            keyword: None,
            value: Value::Str("zeros".into()),
            expr: syn::parse_quote!("zeros"),
        })),
    };
    for name in ["alpha_regularizer", "alpha_constraint"] {
        if let Some(arg) = b.get(name).filter(|a| !matches!(a.value, Value::None)) {
            errors.push(Error::new_spanned(
                &arg.expr,
                format!(
                    "`{name}` of `PReLU` is not supported yet; expected `None`, found {}\n  note: kiln runs inference only, where regularizers and constraints have no effect",
                    arg.value.describe()
                ),
            ));
        }
    }
    let alpha = errors.ok(alpha_shape(b, input));
    errors.into_result()?;
    let (Some(alpha_initializer), Some(alpha)) = (alpha_initializer, alpha) else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `PReLU` arguments",
        ));
    };
    Ok(Box::new(PReLU {
        input: input.shape.clone(),
        alpha,
        alpha_initializer,
    }))
}

/// Keras's `param_shape`: the input's shape with each shared axis set to 1.
fn alpha_shape(b: &Bound, input: &LayerInput) -> Result<Shape, Error> {
    let mut dims = input.shape.0.clone();
    let Some(arg) = b.get("shared_axes") else {
        return Ok(Shape(dims));
    };
    let axes: Vec<&Arg> = match &arg.value {
        Value::None => return Ok(Shape(dims)),
        Value::Int(_) => vec![arg],
        Value::List(items) | Value::Tuple(items) => items.iter().collect(),
        other => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected a list of axes for `shared_axes` of `PReLU`, like `[1, 2]`, found {}",
                    other.describe()
                ),
            ))
        }
    };
    let rank = input.shape.rank();
    let mut errors = Errors::default();
    let mut seen: Vec<i128> = Vec::new();
    for axis in axes {
        let Value::Int(a) = axis.value else {
            errors.push(Error::new_spanned(
                &axis.expr,
                format!(
                    "expected an integer axis in `shared_axes` of `PReLU`, found {}",
                    axis.value.describe()
                ),
            ));
            continue;
        };
        if !(1..=rank as i128).contains(&a) {
            errors.push(Error::new_spanned(
                &axis.expr,
                format!(
                    "shared axis `{a}` of `PReLU` is out of range for {} of rank {rank}\n  help: expected axes in 1..={rank} (1-based, without the batch axis)",
                    input_phrase(input)
                ),
            ));
        } else if seen.contains(&a) {
            errors.push(Error::new_spanned(
                &axis.expr,
                format!("shared axis `{a}` of `PReLU` is given more than once"),
            ));
        } else {
            seen.push(a);
            dims[a as usize - 1] = 1;
        }
    }
    errors.into_result()?;
    Ok(Shape(dims))
}

impl Layer for PReLU {
    fn output_shape(&self) -> Shape {
        self.input.clone()
    }

    fn weights(&self) -> Vec<Weight> {
        vec![Weight::new("alpha", self.alpha.clone())]
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn state_type(&self) -> Option<TokenStream> {
        Some(quote!(::kiln::__private::layers::PReLU))
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let (input, alpha) = (self.input.slice_tokens(), self.alpha.slice_tokens());
        let init = &self.alpha_initializer;
        quote!(::kiln::__private::layers::PReLU::new(#input, #alpha, #init, #seed, #first_weight))
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        quote!({
            let mut x = x;
            #state.forward(::kiln::__private::Tensor::values_mut(&mut x));
            x
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;

    fn alpha(inv: Invocation) -> Result<Shape, String> {
        let call = &inv.models[0].layers[0];
        let shape = Shape(vec![4, 5, 3]);
        let input = LayerInput {
            shape: &shape,
            source: "the model input",
        };
        let b = bind(call, &KIND.signature).map_err(|e| e.to_string())?;
        let layer = build(&b, &input).map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })?;
        Ok(layer.weights()[0].shape.clone())
    }

    #[test]
    fn alpha_shape_follows_keras() {
        let s = |dims: &[usize]| Ok(Shape(dims.to_vec()));
        assert_eq!(
            alpha(syn::parse_quote!(M = Sequential([PReLU()]))),
            s(&[4, 5, 3])
        );
        assert_eq!(
            alpha(syn::parse_quote!(
                M = Sequential([PReLU(shared_axes = [1])])
            )),
            s(&[1, 5, 3])
        );
        assert_eq!(
            alpha(syn::parse_quote!(
                M = Sequential([PReLU(shared_axes = (1, 2))])
            )),
            s(&[1, 1, 3])
        );
        assert_eq!(
            alpha(syn::parse_quote!(M = Sequential([PReLU(shared_axes = 3)]))),
            s(&[4, 5, 1])
        );
    }

    #[test]
    fn bad_axes_and_training_arguments_are_reported_together() {
        let e = alpha(syn::parse_quote!(
            M = Sequential([PReLU(
                alpha_regularizer = l2(0.01),
                shared_axes = [0, 2, 2, 4]
            )])
        ))
        .unwrap_err();
        assert!(
            e.contains("`alpha_regularizer` of `PReLU` is not supported yet"),
            "{e}"
        );
        assert!(e.contains("shared axis `0` of `PReLU` is out of range for the model input (4, 5, 3) of rank 3"), "{e}");
        assert!(
            e.contains("shared axis `2` of `PReLU` is given more than once"),
            "{e}"
        );
        assert!(
            e.contains("shared axis `4` of `PReLU` is out of range"),
            "{e}"
        );
    }
}
