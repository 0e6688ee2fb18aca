//! `PReLU(alpha_initializer = "zeros", alpha_regularizer = None, alpha_constraint = None,
//! shared_axes = None)`: `f(x) = x` for `x >= 0`, `alpha * x` otherwise, with a learned
//! `alpha` per value (Keras computes `relu(x) - alpha * relu(-x)`, the same numbers).
//!
//! Weight `alpha` has the input's per-sample shape with every axis of `shared_axes` set to 1,
//! exactly as Keras builds it: on a `(4, 5, 3)` input, `shared_axes = [1, 2]` gives alpha
//! `(1, 1, 3)`, one slope per channel. `shared_axes` holds Keras axes (1 is the first axis
//! after the batch), as a list, a tuple or a single integer.
//!
//! `alpha_regularizer` (`l2(0.01)`, ...) and `alpha_constraint` (`non_neg()`, `max_norm(..)`,
//! with `axis` counted over alpha's shape) act in training, as on Dense's weights.
//!
//! Backward pass: `dx = dy` where `x > 0`, `alpha * dy` where `x < 0` and 0 at `x == 0`
//! (JAX's `relu` derivative in Keras's `relu(x) - alpha * relu(-x)`); alpha's gradient is
//! `dy * min(x, 0)` summed over the batch and the shared axes.
//!
//! Shape rule: output shape = input shape, any rank. Masks pass through.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward, Weight};
use crate::args::{Bound, Errors, Signature};
use crate::ast::{Arg, Value};
use crate::shape::Shape;
use crate::{constraints, initializers, regularizers};
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
    /// `shared_axes` holds 1, the timesteps of a `(timesteps, features)` input: one `alpha`
    /// serves every timestep, which streaming needs.
    shares_timesteps: bool,
    alpha_initializer: TokenStream,
    alpha_regularizer: Option<TokenStream>,
    alpha_constraint: Option<TokenStream>,
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
    let alpha_regularizer = b
        .get("alpha_regularizer")
        .and_then(|arg| errors.ok(regularizers::resolve(arg)))
        .flatten();
    // Alpha has the input's rank whatever `shared_axes` says, so the constraint's `axis`
    // can be checked even when `shared_axes` is wrong.
    let alpha_constraint = b
        .get("alpha_constraint")
        .and_then(|arg| errors.ok(constraints::resolve(arg, input.shape.rank())))
        .flatten();
    let alpha = errors.ok(alpha_shape(b, input));
    errors.into_result()?;
    let (Some(alpha_initializer), Some(alpha)) = (alpha_initializer, alpha) else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `PReLU` arguments",
        ));
    };
    let shares_timesteps = match b.get("shared_axes").map(|a| &a.value) {
        Some(Value::Int(1)) => true,
        Some(Value::List(items) | Value::Tuple(items)) => {
            items.iter().any(|i| matches!(i.value, Value::Int(1)))
        }
        _ => false,
    };
    Ok(Box::new(PReLU {
        input: input.shape.clone(),
        alpha,
        shares_timesteps,
        alpha_initializer,
        alpha_regularizer,
        alpha_constraint,
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
                    input.phrase()
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
        let mut alpha = Weight::new("alpha", self.alpha.clone());
        alpha.regularizer = self.alpha_regularizer.clone();
        alpha.constraint = self.alpha_constraint.clone();
        vec![alpha]
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

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let (input, alpha) = (self.input.slice_tokens(), self.alpha.slice_tokens());
        let values = &weights[0];
        quote!(::kiln::__private::layers::PReLU::baked(#input, #alpha, #values))
    }

    /// Streaming: the slopes of one timestep, the same at each (`shared_axes = [1]`, or a
    /// rank-1 input after a recurrent layer's last output).
    fn step(&self, s: &super::Step) -> Option<super::StepCode> {
        let streams = match self.input.rank() {
            1 => true,
            2 => self.shares_timesteps,
            _ => false,
        };
        let w = &s.weights;
        streams.then(|| {
            super::StepCode::stateless(SliceForward::InPlace(quote!(#w.forward_timestep(x);)))
        })
    }

    fn step_refusal(&self) -> Option<String> {
        (self.input.rank() == 2 && !self.shares_timesteps).then(|| {
            "`PReLU` without `shared_axes = [1]` has one `alpha` per timestep (Keras cannot build it on `(None, ...)` either)\n  help: add `shared_axes = [1]` to share the slopes across timesteps".to_string()
        })
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        let state = &f.state;
        Some(SliceForward::InPlace(quote!(#state.forward(x);)))
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        quote!({
            let mut x = x;
            #state.forward(::kiln::__private::Tensor::values_mut(&mut x));
            x
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        let (state, k, input_grad) = (&b.state, b.first_weight, b.need_input_grad);
        // Without an input gradient the buffer goes back to the step's pool.
        let result = if input_grad {
            quote!(dx)
        } else {
            quote!(pass.pool.give(dx))
        };
        Some(quote!({
            let mut dx = dy;
            #state.backward(
                ::kiln::__private::Tensor::values(x),
                ::kiln::__private::Tensor::values_mut(&mut dx),
                grads.slot(#k),
                #input_grad,
            );
            #result
        }))
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
    fn training_arguments_reach_the_alpha_weight() {
        let inv: Invocation = syn::parse_quote!(
            M = Sequential([PReLU(
                alpha_regularizer = l2(0.5),
                alpha_constraint = max_norm(1.5, axis = -1),
                shared_axes = [1, 2]
            )])
        );
        let call = &inv.models[0].layers[0];
        let shape = Shape(vec![4, 5, 3]);
        let input = LayerInput {
            shape: &shape,
            source: "the model input",
        };
        let Ok(layer) = bind(call, &KIND.signature).and_then(|b| build(&b, &input)) else {
            panic!("PReLU with a regularizer and a constraint should build");
        };
        let weights = layer.weights();
        let text = |t: &Option<TokenStream>| t.as_ref().map(|t| t.to_string()).unwrap_or_default();
        assert!(
            text(&weights[0].regularizer).contains("L2"),
            "{}",
            text(&weights[0].regularizer)
        );
        assert!(
            text(&weights[0].constraint).contains("MaxNorm"),
            "{}",
            text(&weights[0].constraint)
        );
        assert_eq!(weights[0].shape, Shape(vec![1, 1, 3]));
        let plain = alpha(syn::parse_quote!(
            M = Sequential([PReLU(alpha_regularizer = None, alpha_constraint = None)])
        ));
        assert_eq!(plain, Ok(Shape(vec![4, 5, 3])));
    }

    #[test]
    fn bad_axes_and_training_arguments_are_reported_together() {
        let e = alpha(syn::parse_quote!(
            M = Sequential([PReLU(
                alpha_regularizer = l3(0.01),
                alpha_constraint = max_norm(axis = 3),
                shared_axes = [0, 2, 2, 4]
            )])
        ))
        .unwrap_err();
        assert!(e.contains("l3"), "{e}");
        assert!(e.contains("for a weight of rank 3, found `3`"), "{e}");
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
