//! `BatchNormalization(axis = -1, momentum = 0.99, epsilon = 1e-3, center = True,
//! scale = True, beta_initializer = "zeros", gamma_initializer = "ones",
//! moving_mean_initializer = "zeros", moving_variance_initializer = "ones",
//! beta_regularizer = None, gamma_regularizer = None, beta_constraint = None,
//! gamma_constraint = None, renorm = False, renorm_clipping = None, renorm_momentum = 0.99,
//! synchronized = False)`: `gamma * (x - mean) / sqrt(variance + epsilon) + beta` per index
//! of `axis` (a channel), over every other axis and the batch.
//!
//! In `predict*` the mean and variance are the non-trainable moving statistics; in training
//! they are the batch's (the biased variance, as Keras 3's `ops.moments`), and after each step
//! the trainer moves the moving statistics towards them: `moving = moving * momentum + batch *
//! (1 - momentum)`. The backward code writes the batch statistics into the moving weights'
//! gradient slots for that (`Update::MovingAverage`). With a Keras mask (after `Masking`),
//! training's statistics count only the kept positions, as Keras's masked moments do; the
//! output is normalised everywhere and the mask passes on.
//!
//! `axis` is one integer (Keras 3 takes no list): `1..=rank` the sample's axes, negative
//! from the end; the batch axis 0 is refused. Keras 3's batch renormalization (`renorm`,
//! `renorm_clipping`, `renorm_momentum`) and `synchronized` statistics are accepted at their
//! defaults only.
//!
//! Weights, in Keras's order, each `(channels,)`: `gamma` (when `scale`), `beta` (when
//! `center`), then the non-trainable `moving_mean` and `moving_variance`.
//!
//! Backward pass (training mode): the full gradient through the batch mean and variance,
//! as `jax.grad` takes it; `gamma`'s gradient is `Σ dy * x̂`, `beta`'s `Σ dy`.
//!
//! Shape rule: output shape = input shape, any rank.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward, Weight};
use crate::args::{Bound, Errors, Signature};
use crate::ast::{Arg, Value};
use crate::shape::Shape;
use crate::{constraints, initializers, regularizers};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "BatchNormalization",
    signature: Signature {
        params: &[
            "axis",
            "momentum",
            "epsilon",
            "center",
            "scale",
            "beta_initializer",
            "gamma_initializer",
            "moving_mean_initializer",
            "moving_variance_initializer",
            "beta_regularizer",
            "gamma_regularizer",
            "beta_constraint",
            "gamma_constraint",
            "renorm",
            "renorm_clipping",
            "renorm_momentum",
            "synchronized",
        ],
        required: 0,
    },
    build,
};

struct BatchNormalization {
    shape: Shape,
    /// The channel axis within the per-sample shape, from 0.
    axis: usize,
    momentum: f64,
    epsilon: f64,
    /// `gamma` (`scale`) and `beta` (`center`) initializers, when the weight exists.
    gamma: Option<TokenStream>,
    beta: Option<TokenStream>,
    moving_mean_initializer: TokenStream,
    moving_variance_initializer: TokenStream,
    gamma_regularizer: Option<TokenStream>,
    beta_regularizer: Option<TokenStream>,
    gamma_constraint: Option<TokenStream>,
    beta_constraint: Option<TokenStream>,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let axis = errors.ok(sample_axis(b, input, "BatchNormalization"));
    let momentum = errors.ok(b.float("momentum", 0.99));
    let epsilon = errors.ok(b.float("epsilon", 1e-3));
    let center = errors.ok(b.boolean("center", true));
    let scale = errors.ok(b.boolean("scale", true));
    let gamma_initializer = errors.ok(initializer(b, "gamma_initializer", "ones"));
    let beta_initializer = errors.ok(initializer(b, "beta_initializer", "zeros"));
    let moving_mean_initializer = errors.ok(initializer(b, "moving_mean_initializer", "zeros"));
    let moving_variance_initializer =
        errors.ok(initializer(b, "moving_variance_initializer", "ones"));
    let mut regularizer = |name: &str| {
        b.get(name)
            .and_then(|arg| errors.ok(regularizers::resolve(arg)))
            .flatten()
    };
    let gamma_regularizer = regularizer("gamma_regularizer");
    let beta_regularizer = regularizer("beta_regularizer");
    let mut constraint = |name: &str| {
        b.get(name)
            .and_then(|arg| errors.ok(constraints::resolve(arg, 1)))
            .flatten()
    };
    let gamma_constraint = constraint("gamma_constraint");
    let beta_constraint = constraint("beta_constraint");
    errors.ok(refuse_renormalization(b));
    errors.into_result()?;
    let (
        Some(axis),
        Some(momentum),
        Some(epsilon),
        Some(center),
        Some(scale),
        Some(gamma_initializer),
        Some(beta_initializer),
        Some(moving_mean_initializer),
        Some(moving_variance_initializer),
    ) = (
        axis,
        momentum,
        epsilon,
        center,
        scale,
        gamma_initializer,
        beta_initializer,
        moving_mean_initializer,
        moving_variance_initializer,
    )
    else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `BatchNormalization` arguments",
        ));
    };
    Ok(Box::new(BatchNormalization {
        shape: input.shape.clone(),
        axis,
        momentum,
        epsilon,
        gamma: scale.then_some(gamma_initializer),
        beta: center.then_some(beta_initializer),
        moving_mean_initializer,
        moving_variance_initializer,
        gamma_regularizer,
        beta_regularizer,
        gamma_constraint,
        beta_constraint,
    }))
}

/// The runtime initializer of `name`, or of Keras's `default` name when absent.
fn initializer(b: &Bound, name: &str, default: &str) -> Result<TokenStream, Error> {
    match b.get(name) {
        Some(arg) => initializers::resolve(arg),
        None => initializers::resolve(&Arg {
            keyword: None,
            value: Value::Str(default.into()),
            expr: syn::parse_quote!(#default),
        }),
    }
}

/// Keras 3's batch renormalization and cross-device statistics, which kiln has not: each
/// argument must keep its default.
fn refuse_renormalization(b: &Bound) -> Result<(), Error> {
    let mut errors = Errors::default();
    if let (Some(true), Some(arg)) = (errors.ok(b.boolean("renorm", false)), b.get("renorm")) {
        errors.push(Error::new_spanned(
            &arg.expr,
            "`BatchNormalization` with `renorm = True` is not supported: kiln has no batch renormalization\n  help: remove `renorm`; Keras's inference is the same without it, but its weights differ (`moving_stddev`, `renorm_mean`, `renorm_stddev`)",
        ));
    }
    if let Some(arg) = b.get("renorm_clipping") {
        if !matches!(arg.value, Value::None) {
            errors.push(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected `None` for `renorm_clipping` of `BatchNormalization`, found {}\n  note: it only applies with `renorm = True`, which kiln does not support",
                    arg.value.describe()
                ),
            ));
        }
    }
    if let (Some(momentum), Some(arg)) = (
        errors.ok(b.float("renorm_momentum", 0.99)),
        b.get("renorm_momentum"),
    ) {
        if momentum != 0.99 {
            errors.push(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected the default `0.99` for `renorm_momentum` of `BatchNormalization`, found `{momentum:?}`\n  note: it only applies with `renorm = True`, which kiln does not support"
                ),
            ));
        }
    }
    if let (Some(true), Some(arg)) = (
        errors.ok(b.boolean("synchronized", false)),
        b.get("synchronized"),
    ) {
        errors.push(Error::new_spanned(
            &arg.expr,
            "`BatchNormalization` with `synchronized = True` is not supported: it synchronizes statistics across devices (TensorFlow only), and kiln trains on one device\n  help: remove `synchronized`; a kiln batch's statistics are already the whole batch's",
        ));
    }
    errors.into_result()
}

/// A Keras axis of `class`'s input as an axis of the per-sample shape, from 0: `1..=rank`,
/// or negative from the end; the batch axis and out-of-range axes are errors at `arg`.
pub(super) fn resolve_axis(arg: &Arg, class: &str, input: &LayerInput) -> Result<usize, Error> {
    let r = input.shape.rank() as i128;
    let Value::Int(axis) = arg.value else {
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected an integer for `axis` of `{class}`, found {}",
                arg.value.describe()
            ),
        ));
    };
    match axis {
        a if (1..=r).contains(&a) => Ok((a - 1) as usize),
        a if (-r..=-1).contains(&a) => Ok((r + a) as usize),
        a if a == 0 || a == -r - 1 => {
            // BatchNormalization would keep weights per batch index; LayerNormalization
            // would mix the samples.
            let why = if class == "BatchNormalization" {
                ", whose size changes from batch to batch; expected the axis of the channels"
            } else {
                "; kiln normalises within each sample"
            };
            Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "axis `{axis}` of `{class}` is the batch axis{why}\n  help: {} has axes 1..={r} (or -{r}..=-1)",
                    input.phrase()
                ),
            ))
        }
        _ => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "axis `{axis}` of `{class}` is out of range for {} of rank {r}\n  help: expected an axis in 1..={r} or -{r}..=-1 (without the batch axis)",
                input.phrase()
            ),
        )),
    }
}

/// `axis` (default -1: the last axis) as an axis of the per-sample shape.
fn sample_axis(b: &Bound, input: &LayerInput, class: &str) -> Result<usize, Error> {
    let Some(arg) = b.get("axis") else {
        return Ok(input.shape.rank().saturating_sub(1));
    };
    if let Value::Tuple(_) | Value::List(_) = arg.value {
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected an integer for `axis` of `{class}`, found {}\n  note: Keras 3's `BatchNormalization` normalises per index of one axis",
                arg.value.describe()
            ),
        ));
    }
    resolve_axis(arg, class, input)
}

impl BatchNormalization {
    fn channels(&self) -> usize {
        self.shape.0.get(self.axis).copied().unwrap_or(1)
    }

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

    /// The index of the first moving statistic among the layer's weights.
    fn first_moving(&self) -> usize {
        usize::from(self.gamma.is_some()) + usize::from(self.beta.is_some())
    }
}

/// `Some(&mask[..])` or `None`, for a kernel's `Option<&[bool]>`.
fn mask_arg(mask: &Option<TokenStream>) -> TokenStream {
    match mask {
        Some(m) => quote!(::core::option::Option::Some(&#m[..])),
        None => quote!(::core::option::Option::None),
    }
}

impl Layer for BatchNormalization {
    fn output_shape(&self) -> Shape {
        self.shape.clone()
    }

    fn weights(&self) -> Vec<Weight> {
        let shape = Shape(vec![self.channels()]);
        let mut weights = Vec::new();
        if self.gamma.is_some() {
            let mut gamma = Weight::new("gamma", shape.clone());
            gamma.regularizer = self.gamma_regularizer.clone();
            gamma.constraint = self.gamma_constraint.clone();
            weights.push(gamma);
        }
        if self.beta.is_some() {
            let mut beta = Weight::new("beta", shape.clone());
            beta.regularizer = self.beta_regularizer.clone();
            beta.constraint = self.beta_constraint.clone();
            weights.push(beta);
        }
        weights.push(Weight::moving_average(
            "moving_mean",
            shape.clone(),
            self.momentum,
        ));
        weights.push(Weight::moving_average(
            "moving_variance",
            shape,
            self.momentum,
        ));
        weights
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn state_type(&self) -> Option<TokenStream> {
        Some(quote!(::kiln::__private::layers::BatchNormalization))
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let (shape, axis) = (self.shape.slice_tokens(), self.axis);
        let epsilon = crate::activations::f32_lit(self.epsilon as f32);
        let some = |init: &TokenStream| quote!(::core::option::Option::Some(#init));
        let optional = |init: &Option<TokenStream>| match init {
            Some(init) => some(init),
            None => quote!(::core::option::Option::None),
        };
        let (gamma, beta) = (optional(&self.gamma), optional(&self.beta));
        let (mean, variance) = (
            some(&self.moving_mean_initializer),
            some(&self.moving_variance_initializer),
        );
        quote!(::kiln::__private::layers::BatchNormalization::new(
            #shape, #axis, #epsilon, [#gamma, #beta, #mean, #variance], #seed, #first_weight
        ))
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let (shape, axis) = (self.shape.slice_tokens(), self.axis);
        let epsilon = crate::activations::f32_lit(self.epsilon as f32);
        let mut next = weights.iter();
        // Only a weight the layer has takes the next slice.
        let mut optional = |present: bool| match present.then(|| next.next()).flatten() {
            Some(values) => quote!(::core::option::Option::Some(#values)),
            None => quote!(::core::option::Option::None),
        };
        let gamma = optional(self.gamma.is_some());
        let beta = optional(self.beta.is_some());
        let mut rest = weights.iter().skip(self.first_moving());
        let (Some(mean), Some(variance)) = (rest.next(), rest.next()) else {
            // The expansion passes one slice per weight; nothing else reaches here.
            return quote!(::core::compile_error!(
                "kiln: BatchNormalization baked without its moving statistics"
            ));
        };
        quote!(::kiln::__private::layers::BatchNormalization::baked(
            #shape, #axis, #epsilon, #gamma, #beta, #mean, #variance
        ))
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

    fn forward_train(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let mask = mask_arg(&f.mask);
        // The cache is the batch statistics (and room for the backward pass's sums), from
        // the step's pool.
        quote!({
            let mut x = x;
            let mut statistics = pass.pool.take_vec_to_overwrite(#state.training_len());
            #state.train(::kiln::__private::Tensor::values_mut(&mut x), #mask, &mut statistics);
            (x, statistics)
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        let (state, input_grad) = (&b.state, b.need_input_grad);
        let mask = mask_arg(&b.mask);
        let grads_pair = self.parameter_grads(b.first_weight);
        let mean = b.first_weight + self.first_moving();
        let variance = mean + 1;
        let result = if input_grad {
            quote!(dx)
        } else {
            quote!(pass.pool.give(dx))
        };
        Some(quote!({
            let mut dx = dy;
            let mut statistics = cache;
            #state.backward(
                ::kiln::__private::Tensor::values(x),
                ::kiln::__private::Tensor::values_mut(&mut dx),
                #mask,
                &mut statistics,
                #grads_pair,
                #input_grad,
            );
            // The batch statistics, for the trainer's moving averages.
            grads.slot(#mean).copy_from_slice(#state.batch_mean(&statistics));
            grads.slot(#variance).copy_from_slice(#state.batch_variance(&statistics));
            pass.pool.give_vec(statistics);
            #result
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::output_shape_for_test;

    fn weights(
        tokens: TokenStream,
        input: &[usize],
    ) -> Result<Vec<(String, Vec<usize>, bool)>, String> {
        let inv: crate::ast::Invocation = syn::parse2(tokens).map_err(|e| e.to_string())?;
        let b = crate::args::bind(&inv.models[0].layers[0], &KIND.signature)
            .map_err(|e| e.to_string())?;
        let shape = Shape(input.to_vec());
        let input = LayerInput {
            shape: &shape,
            source: "layer `dense`",
        };
        let layer = build(&b, &input).map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })?;
        Ok(layer
            .weights()
            .iter()
            .map(|w| (w.suffix.to_string(), w.shape.0.clone(), w.trainable()))
            .collect())
    }

    #[test]
    fn weights_follow_keras_order_and_trainability() {
        let all = weights(quote!(M = Sequential([BatchNormalization()])), &[5, 3]).unwrap();
        assert_eq!(
            all,
            [
                ("gamma".into(), vec![3], true),
                ("beta".into(), vec![3], true),
                ("moving_mean".into(), vec![3], false),
                ("moving_variance".into(), vec![3], false),
            ]
        );
        let bare = weights(
            quote!(M = Sequential([BatchNormalization(1, center = False, scale = False)])),
            &[5, 3],
        )
        .unwrap();
        assert_eq!(
            bare,
            [
                ("moving_mean".into(), vec![5], false),
                ("moving_variance".into(), vec![5], false),
            ]
        );
        let beta_only = weights(
            quote!(M = Sequential([BatchNormalization(scale = False)])),
            &[4],
        )
        .unwrap();
        assert_eq!(beta_only[0].0, "beta");
        assert_eq!(beta_only.len(), 3);
    }

    /// Each weight the layer has takes the next baked slice, in Keras's order.
    #[test]
    fn baked_slices_go_to_the_weights_present() {
        let slices = [quote!(w0), quote!(w1), quote!(w2), quote!(w3)];
        for (args, expected) in [
            (quote!(), "Some (w0) , Some (w1) , w2 , w3"),
            (quote!(scale = False), "None , Some (w0) , w1 , w2"),
            (quote!(center = False), "Some (w0) , None , w1 , w2"),
            (
                quote!(center = False, scale = False),
                "None , None , w0 , w1",
            ),
        ] {
            let inv: crate::ast::Invocation =
                syn::parse2(quote!(M = Sequential([BatchNormalization(#args)]))).unwrap();
            let b = crate::args::bind(&inv.models[0].layers[0], &KIND.signature).unwrap();
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
    fn axis_counts_like_keras_and_refuses_the_batch() {
        let shape = |t: TokenStream| output_shape_for_test(&KIND, t, &[4, 5, 3], "the model input");
        assert!(shape(quote!(M = Sequential([BatchNormalization(axis = -3)]))).is_ok());
        assert!(shape(quote!(M = Sequential([BatchNormalization(2)]))).is_ok());
        let e = shape(quote!(M = Sequential([BatchNormalization(axis = 4)]))).unwrap_err();
        assert!(
            e.contains("axis `4` of `BatchNormalization` is out of range for the model input (4, 5, 3) of rank 3"),
            "{e}"
        );
        let e = shape(quote!(M = Sequential([BatchNormalization(axis = 0)]))).unwrap_err();
        assert!(e.contains("is the batch axis"), "{e}");
        let e = shape(quote!(M = Sequential([BatchNormalization(axis = [1, 2])]))).unwrap_err();
        assert!(e.contains("expected an integer for `axis`"), "{e}");
    }

    #[test]
    fn renormalization_arguments_keep_their_defaults() {
        let shape = |t: TokenStream| output_shape_for_test(&KIND, t, &[4], "the model input");
        assert!(shape(quote!(
            M = Sequential([BatchNormalization(
                renorm = False,
                renorm_clipping = None,
                renorm_momentum = 0.99,
                synchronized = False
            )])
        ))
        .is_ok());
        let e = shape(quote!(
            M = Sequential([BatchNormalization(
                renorm = True,
                renorm_clipping = 1.0,
                renorm_momentum = 0.9,
                synchronized = True,
                momentum = "fast"
            )])
        ))
        .unwrap_err();
        for part in [
            "`renorm = True` is not supported",
            "expected `None` for `renorm_clipping`",
            "expected the default `0.99` for `renorm_momentum` of `BatchNormalization`, found `0.9`",
            "`synchronized = True` is not supported",
            "expected a number for `momentum`",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
    }
}
