//! `LayerNormalization(axis = -1, epsilon = 1e-3, center = True, scale = True,
//! beta_initializer = "zeros", gamma_initializer = "ones", beta_regularizer = None,
//! gamma_regularizer = None, beta_constraint = None, gamma_constraint = None,
//! rms_scaling = False)`: within each sample,
//! `gamma * (x - mean) / sqrt(variance + epsilon) + beta` with the mean and (biased) variance
//! over the `axis` axes, the same in training and inference.
//!
//! `axis` is one integer or a list/tuple of them (Keras saves `[-1]`): `1..=rank` the
//! sample's axes, negative from the end; the batch axis 0 is refused, and so is an axis given
//! twice. `gamma` and `beta` span the normalized axes with Keras's declared shape: their
//! sizes in the order of the sorted Keras axis numbers (`axis = [1, -1]` on `(4, 5)` gives
//! `(5, 4)`), with values laid out in the input's order (Keras reshapes them so).
//!
//! `rms_scaling = True` (deprecated in Keras 3: it divides by the standard deviation without
//! centring, not by the root mean square) is refused.
//!
//! Backward pass: the gradient through each group's mean and variance; `gamma`'s gradient is
//! `Σ dy * x̂`, `beta`'s `Σ dy`.
//!
//! Shape rule: output shape = input shape, any rank. Masks pass through (Keras's layer
//! supports masking and ignores the mask).

use super::batch_normalization::resolve_axis;
use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward, Weight};
use crate::args::{Bound, Errors, Signature};
use crate::ast::{Arg, Value};
use crate::shape::Shape;
use crate::{constraints, initializers, regularizers};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "LayerNormalization",
    signature: Signature {
        params: &[
            "axis",
            "epsilon",
            "center",
            "scale",
            "beta_initializer",
            "gamma_initializer",
            "beta_regularizer",
            "gamma_regularizer",
            "beta_constraint",
            "gamma_constraint",
            "rms_scaling",
        ],
        required: 0,
    },
    build,
};

struct LayerNormalization {
    shape: Shape,
    /// The normalized axes within the per-sample shape, from 0, increasing.
    axes: Vec<usize>,
    /// Keras's declared shape of `gamma` and `beta`.
    weight_shape: Shape,
    epsilon: f64,
    /// `gamma` (`scale`) and `beta` (`center`) initializers, when the weight exists.
    gamma: Option<TokenStream>,
    beta: Option<TokenStream>,
    gamma_regularizer: Option<TokenStream>,
    beta_regularizer: Option<TokenStream>,
    gamma_constraint: Option<TokenStream>,
    beta_constraint: Option<TokenStream>,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let axes = errors.ok(normalized_axes(b, input));
    let epsilon = errors.ok(b.float("epsilon", 1e-3));
    let center = errors.ok(b.boolean("center", true));
    let scale = errors.ok(b.boolean("scale", true));
    let initializer = |name: &str, default: &str| match b.get(name) {
        Some(arg) => initializers::resolve(arg),
        None => initializers::resolve(&Arg {
            keyword: None,
            value: Value::Str(default.into()),
            expr: syn::parse_quote!(#default),
        }),
    };
    let gamma_initializer = errors.ok(initializer("gamma_initializer", "ones"));
    let beta_initializer = errors.ok(initializer("beta_initializer", "zeros"));
    let mut regularizer = |name: &str| {
        b.get(name)
            .and_then(|arg| errors.ok(regularizers::resolve(arg)))
            .flatten()
    };
    let gamma_regularizer = regularizer("gamma_regularizer");
    let beta_regularizer = regularizer("beta_regularizer");
    // The weights' rank is the number of axes, known even when an axis is wrong.
    let rank = match b.get("axis").map(|a| &a.value) {
        Some(Value::List(items) | Value::Tuple(items)) => items.len(),
        _ => 1,
    };
    let mut constraint = |name: &str| {
        b.get(name)
            .and_then(|arg| errors.ok(constraints::resolve(arg, rank)))
            .flatten()
    };
    let gamma_constraint = constraint("gamma_constraint");
    let beta_constraint = constraint("beta_constraint");
    if let (Some(true), Some(arg)) = (
        errors.ok(b.boolean("rms_scaling", false)),
        b.get("rms_scaling"),
    ) {
        errors.push(Error::new_spanned(
            &arg.expr,
            "`LayerNormalization` with `rms_scaling = True` is not supported: Keras 3 deprecates it (it divides by the standard deviation without centring, not by the root mean square)\n  help: remove `rms_scaling`",
        ));
    }
    errors.into_result()?;
    let (
        Some((axes, weight_shape)),
        Some(epsilon),
        Some(center),
        Some(scale),
        Some(gamma_initializer),
        Some(beta_initializer),
    ) = (
        axes,
        epsilon,
        center,
        scale,
        gamma_initializer,
        beta_initializer,
    )
    else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `LayerNormalization` arguments",
        ));
    };
    Ok(Box::new(LayerNormalization {
        shape: input.shape.clone(),
        axes,
        weight_shape,
        epsilon,
        gamma: scale.then_some(gamma_initializer),
        beta: center.then_some(beta_initializer),
        gamma_regularizer,
        beta_regularizer,
        gamma_constraint,
        beta_constraint,
    }))
}

/// The normalized axes (per-sample, increasing) and Keras's weight shape: the axes' sizes in
/// the order of the sorted Keras axis numbers, as Keras's `build` declares them.
fn normalized_axes(b: &Bound, input: &LayerInput) -> Result<(Vec<usize>, Shape), Error> {
    let class = "LayerNormalization";
    let Some(arg) = b.get("axis") else {
        let last = input.shape.rank().saturating_sub(1);
        return Ok((vec![last], Shape(vec![input.shape.last()])));
    };
    let items: Vec<&Arg> = match &arg.value {
        Value::List(items) | Value::Tuple(items) => items.iter().collect(),
        _ => vec![arg],
    };
    if items.is_empty() {
        return Err(Error::new_spanned(
            &arg.expr,
            format!("`axis` of `{class}` lists no axis; expected at least one, like `-1`"),
        ));
    }
    let mut errors = Errors::default();
    // (Keras's number, per-sample axis) of each axis.
    let mut axes: Vec<(i128, usize)> = Vec::new();
    for item in items {
        let Some(axis) = errors.ok(resolve_axis(item, class, input)) else {
            continue;
        };
        let Value::Int(number) = item.value else {
            continue;
        };
        match axes.iter().find(|(_, a)| *a == axis) {
            Some((earlier, _)) => errors.push(Error::new_spanned(
                &item.expr,
                format!(
                    "axis `{number}` of `{class}` is the same axis as `{earlier}`, given earlier\n  help: {} has axes 1..={} (or -{}..=-1); list each once",
                    input.phrase(),
                    input.shape.rank(),
                    input.shape.rank()
                ),
            )),
            None => axes.push((number, axis)),
        }
    }
    errors.into_result()?;
    axes.sort_by_key(|(number, _)| *number);
    let weight_shape = Shape(
        axes.iter()
            .map(|(_, axis)| input.shape.0.get(*axis).copied().unwrap_or(1))
            .collect(),
    );
    let mut positions: Vec<usize> = axes.into_iter().map(|(_, axis)| axis).collect();
    positions.sort_unstable();
    Ok((positions, weight_shape))
}

impl LayerNormalization {
    /// The expression giving `(grad_gamma, grad_beta)` from `grads`, the layer's first
    /// weight being `k`.
    fn parameter_grads(&self, k: usize) -> TokenStream {
        let none = quote!(::core::option::Option::None);
        match (self.gamma.is_some(), self.beta.is_some()) {
            (true, true) => quote!({
                let (gamma, beta) = grads.pair(#k, true);
                (::core::option::Option::Some(gamma), beta)
            }),
            (true, false) => quote!((::core::option::Option::Some(grads.slot(#k)), #none)),
            (false, true) => quote!((#none, ::core::option::Option::Some(grads.slot(#k)))),
            (false, false) => quote!((#none, #none)),
        }
    }
}

impl Layer for LayerNormalization {
    fn output_shape(&self) -> Shape {
        self.shape.clone()
    }

    fn weights(&self) -> Vec<Weight> {
        let mut weights = Vec::new();
        if self.gamma.is_some() {
            let mut gamma = Weight::new("gamma", self.weight_shape.clone());
            gamma.regularizer = self.gamma_regularizer.clone();
            gamma.constraint = self.gamma_constraint.clone();
            weights.push(gamma);
        }
        if self.beta.is_some() {
            let mut beta = Weight::new("beta", self.weight_shape.clone());
            beta.regularizer = self.beta_regularizer.clone();
            beta.constraint = self.beta_constraint.clone();
            weights.push(beta);
        }
        weights
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn state_type(&self) -> Option<TokenStream> {
        Some(quote!(::kiln::__private::layers::LayerNormalization))
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let (shape, weight_shape) = (self.shape.slice_tokens(), self.weight_shape.slice_tokens());
        let axes = &self.axes;
        let epsilon = crate::activations::f32_lit(self.epsilon as f32);
        let optional = |init: &Option<TokenStream>| match init {
            Some(init) => quote!(::core::option::Option::Some(#init)),
            None => quote!(::core::option::Option::None),
        };
        let (gamma, beta) = (optional(&self.gamma), optional(&self.beta));
        quote!(::kiln::__private::layers::LayerNormalization::new(
            #shape, &[#(#axes),*], #weight_shape, #epsilon, [#gamma, #beta], #seed, #first_weight
        ))
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let shape = self.shape.slice_tokens();
        let axes = &self.axes;
        let epsilon = crate::activations::f32_lit(self.epsilon as f32);
        let mut next = weights.iter();
        // Only a weight the layer has takes the next slice.
        let mut optional = |present: bool| match present.then(|| next.next()).flatten() {
            Some(values) => quote!(::core::option::Option::Some(#values)),
            None => quote!(::core::option::Option::None),
        };
        let gamma = optional(self.gamma.is_some());
        let beta = optional(self.beta.is_some());
        quote!(::kiln::__private::layers::LayerNormalization::baked(
            #shape, &[#(#axes),*], #epsilon, #gamma, #beta
        ))
    }

    /// Streaming: on the last axis only, each timestep normalised on its own (`kiln::
    /// layers::LayerNormalization::forward_timestep`).
    fn step(&self, s: &super::Step) -> Option<super::StepCode> {
        let rank = self.shape.rank();
        let w = &s.weights;
        (rank <= 2 && self.axes == [rank.saturating_sub(1)]).then(|| {
            super::StepCode::stateless(SliceForward::InPlace(quote!(#w.forward_timestep(x);)))
        })
    }

    fn step_refusal(&self) -> Option<String> {
        (self.shape.rank() == 2 && self.axes != [1]).then(|| {
            "`LayerNormalization` over the timesteps axis needs the whole sequence\n  help: normalise the features only, `axis = -1` (the default)".to_string()
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
        let (state, input_grad) = (&b.state, b.need_input_grad);
        let grads_pair = self.parameter_grads(b.first_weight);
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
                #grads_pair,
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

    fn axes(inv: Invocation) -> Result<(Vec<usize>, Vec<usize>), String> {
        let shape = Shape(vec![4, 5, 3]);
        let input = LayerInput {
            shape: &shape,
            source: "layer `dense`",
        };
        let b = bind(&inv.models[0].layers[0], &KIND.signature).map_err(|e| e.to_string())?;
        normalized_axes(&b, &input)
            .map(|(a, s)| (a, s.0))
            .map_err(|e| {
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
    }

    #[test]
    fn weight_shapes_follow_keras_build() {
        assert_eq!(
            axes(syn::parse_quote!(M = Sequential([LayerNormalization()]))),
            Ok((vec![2], vec![3]))
        );
        assert_eq!(
            axes(syn::parse_quote!(
                M = Sequential([LayerNormalization(axis = [-1])])
            )),
            Ok((vec![2], vec![3]))
        );
        assert_eq!(
            axes(syn::parse_quote!(
                M = Sequential([LayerNormalization(axis = (1, 2))])
            )),
            Ok((vec![0, 1], vec![4, 5]))
        );
        // Keras sorts the numbers: -1 before 1, so gamma is (3, 4).
        assert_eq!(
            axes(syn::parse_quote!(
                M = Sequential([LayerNormalization(axis = [1, -1])])
            )),
            Ok((vec![0, 2], vec![3, 4]))
        );
    }

    /// Each weight the layer has takes the next baked slice.
    #[test]
    fn baked_slices_go_to_the_weights_present() {
        let slices = [quote!(w0), quote!(w1)];
        for (args, expected) in [
            (quote!(), "Some (w0) , Some (w1)"),
            (quote!(scale = False), "None , Some (w0)"),
            (quote!(center = False), "Some (w0) , None"),
            (quote!(center = False, scale = False), "None , None"),
        ] {
            let inv: Invocation =
                syn::parse2(quote!(M = Sequential([LayerNormalization(#args)]))).unwrap();
            let b = bind(&inv.models[0].layers[0], &KIND.signature).unwrap();
            let shape = Shape(vec![3]);
            let input = LayerInput {
                shape: &shape,
                source: "the model input",
            };
            let Ok(layer) = build(&b, &input) else {
                panic!("{args} should build");
            };
            let n = layer.weights().len();
            let code = layer
                .baked(&slices[..n])
                .to_string()
                .replace(":: core :: option :: Option :: ", "");
            assert!(code.contains(expected), "{args}: {code}");
        }
    }

    #[test]
    fn bad_axes_are_reported_together() {
        let e = axes(syn::parse_quote!(
            M = Sequential([LayerNormalization(axis = [0, 4, 2, -2, "x"])])
        ))
        .unwrap_err();
        assert!(
            e.contains("axis `0` of `LayerNormalization` is the batch axis"),
            "{e}"
        );
        assert!(e.contains("axis `4` of `LayerNormalization` is out of range for its input (4, 5, 3) from layer `dense` of rank 3"), "{e}");
        assert!(
            e.contains("axis `-2` of `LayerNormalization` is the same axis as `2`"),
            "{e}"
        );
        assert!(e.contains("expected an integer for `axis`"), "{e}");
        let e = axes(syn::parse_quote!(
            M = Sequential([LayerNormalization(axis = [])])
        ))
        .unwrap_err();
        assert!(e.contains("lists no axis"), "{e}");
    }
}
