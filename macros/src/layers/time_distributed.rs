//! `TimeDistributed(layer)`: the wrapped layer applied to every timestep slice of its input
//! with the same weights (Keras 3, `layers/rnn/time_distributed.py`). [`wrapped_layer`]
//! reads a wrapper's layer argument, for `Bidirectional` too.
//!
//! Shape rule: `(timesteps, *rest)` -> `(timesteps, *layer(rest))`; the input needs rank 2
//! or more. Mask: passed on unchanged (Keras's `supports_masking`); the wrapped layers kiln
//! accepts take none in Keras (Dense, convolutions, ...), so they never see it.
//!
//! Code: kiln's tensor layout stores a batch of `n` samples of `(timesteps, *rest)` exactly
//! as `n * timesteps` samples of `rest`, so in batch mode (training included) the wrapped
//! layer's own code runs unchanged on the same memory; one-sample `predict` and
//! `predict_into` loop over the timesteps. Weights: the wrapped layer's, scoped by its
//! name (`time_distributed/dense/kernel`).
//!
//! Wrappable: [`WRAPPABLE`], the layers whose per-sample rule applies to one slice.
//! `BatchNormalization` is not (Keras normalises each timestep's batch on its own in
//! training), nor mask producers and consumers, recurrent layers, `Embedding` and the
//! wrappers; an `activity_regularizer` on the wrapped layer is refused because Keras's
//! `TimeDistributed` calls the layer's `call` and so never applies it.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward, Weight};
use crate::args::{bind, Bound, Signature};
use crate::ast::{LayerCall, Value};
use crate::shape::{Mode, Shape};
use crate::suggest::did_you_mean;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "TimeDistributed",
    signature: Signature {
        params: &["layer"],
        required: 1,
    },
    build,
};

/// The layers `TimeDistributed` can wrap.
pub const WRAPPABLE: &[&str] = &[
    "Dense",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "ThresholdedReLU",
    "Dropout",
    "Flatten",
    "Reshape",
    "LayerNormalization",
    "Conv1D",
    "Conv2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
];

/// A wrapper's layer argument `param` as a layer call of a registered kind, `None` when
/// it is absent.
pub fn wrapped_layer(
    b: &Bound,
    param: &str,
) -> Result<Option<(LayerCall, &'static LayerKind)>, Error> {
    let Some(arg) = b.get(param) else {
        return Ok(None);
    };
    let class = b.class();
    let Some(call) = arg.layer_call() else {
        let example = if class == "Bidirectional" {
            "LSTM(32)"
        } else {
            "Dense(8)"
        };
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected a layer call like `{example}` for `{param}` of `{class}`, found {}",
                arg.value.describe()
            ),
        ));
    };
    let inner = call.class.to_string();
    match super::find(&inner) {
        Some(kind) => Ok(Some((call, kind))),
        None => {
            let hint = did_you_mean(&inner, super::REGISTRY.iter().map(|k| k.class));
            Err(Error::new(
                call.class.span(),
                format!("unknown layer `{inner}`{hint}"),
            ))
        }
    }
}

struct TimeDistributed {
    inner: Box<dyn Layer>,
    timesteps: usize,
    /// The wrapped layer's per-timestep input and output shapes.
    step_input: Shape,
    step_output: Shape,
    /// The wrapped layer's weight scope (`dense/`).
    scope: String,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let (call, kind) = wrapped_layer(b, "layer")?
        .ok_or_else(|| Error::new_spanned(&b.call.call, "`TimeDistributed` needs a layer"))?;
    if !WRAPPABLE.contains(&kind.class) {
        let list: Vec<String> = WRAPPABLE.iter().map(|c| format!("`{c}`")).collect();
        return Err(Error::new(
            call.class.span(),
            format!(
                "`TimeDistributed` cannot wrap `{}`{}\n  expected one of: {}",
                kind.class,
                refusal(kind.class),
                list.join(", ")
            ),
        ));
    }
    let inner_bound = bind(&call, &kind.signature)?;
    if let Some(arg) = inner_bound
        .get("activity_regularizer")
        .filter(|a| !matches!(a.value, Value::None))
    {
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "`activity_regularizer` of a `{}` inside `TimeDistributed` has no effect in Keras, which calls the wrapped layer's `call` directly; remove it",
                kind.class
            ),
        ));
    }
    let (timesteps, rest) = match input.shape.0.split_first() {
        Some((t, rest)) if !rest.is_empty() => (*t, Shape(rest.to_vec())),
        _ => {
            return Err(Error::new(
                b.call.class.span(),
                format!(
                    "`TimeDistributed` expects an input of rank 2 or more `(timesteps, ...)`, but {} has rank {}\n  help: the first axis is the one the layer is applied along",
                    input.phrase(),
                    input.shape.rank()
                ),
            ))
        }
    };
    let source = format!("one timestep of {}, shaped", input.phrase());
    let step = LayerInput {
        shape: &rest,
        source: &source,
    };
    let inner = (kind.build)(&inner_bound, &step)?;
    let step_output = inner.output_shape();
    Ok(Box::new(TimeDistributed {
        inner,
        timesteps,
        step_input: rest,
        step_output,
        scope: String::new(),
    }))
}

/// Why a registered layer cannot be wrapped, when there is a reason beyond its rule.
fn refusal(class: &str) -> &'static str {
    match class {
        "BatchNormalization" => {
            "; Keras normalises each timestep's batch separately in training, which kiln does not do"
        }
        "Masking" | "Embedding" => "; its mask or ids must come from the model input",
        "SimpleRNN" | "LSTM" | "GRU" | "Bidirectional" | "TimeDistributed" => {
            "; kiln does not nest sequence layers in `TimeDistributed`"
        }
        _ => "",
    }
}

impl TimeDistributed {
    fn step_forward(&self, f: &Forward, mode: Mode) -> Forward {
        Forward {
            mode,
            state: f.state.clone(),
            mask: None,
        }
    }
}

impl Layer for TimeDistributed {
    fn output_shape(&self) -> Shape {
        let mut dims = vec![self.timesteps];
        dims.extend_from_slice(&self.step_output.0);
        Shape(dims)
    }

    fn weights(&self) -> Vec<Weight> {
        self.inner
            .weights()
            .into_iter()
            .map(|mut w| {
                w.scope = format!("{}{}", self.scope, w.scope);
                w
            })
            .collect()
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn name_nested(&mut self, names: &[String]) {
        if let Some(name) = names.first() {
            self.scope = format!("{name}/");
        }
    }

    fn state_type(&self) -> Option<TokenStream> {
        self.inner.state_type()
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        self.inner.init(seed, first_weight)
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        self.inner.baked(weights)
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let inner = self.inner.forward(&self.step_forward(f, f.mode));
        if f.mode == Mode::Batch {
            return inner;
        }
        let out = self.output_shape();
        let (rows, cols) = (out.last(), out.positions());
        let whole = Shape(
            std::iter::once(self.timesteps)
                .chain(self.step_input.0.iter().copied())
                .collect(),
        );
        let in_ty = whole.tensor_type(Mode::Sample);
        let (step_in, step_out) = (
            self.step_input.tensor_type(Mode::Sample),
            self.step_output.tensor_type(Mode::Sample),
        );
        let (il, ol, t) = (
            self.step_input.len(),
            self.step_output.len(),
            self.timesteps,
        );
        quote!({
            let whole = x;
            let mut y = <#in_ty as ::kiln::__private::Tensor>::zeros_shaped::<#rows, #cols>(1);
            for t in 0..#t {
                let x: #step_in = ::kiln::__private::Tensor::from_values(
                    &::kiln::__private::Tensor::values(&whole)[t * #il..(t + 1) * #il],
                );
                let step: #step_out = #inner;
                ::kiln::__private::Tensor::values_mut(&mut y)[t * #ol..(t + 1) * #ol]
                    .copy_from_slice(::kiln::__private::Tensor::values(&step));
            }
            y
        })
    }

    /// Streaming, on `(timesteps, features)`: the wrapped layer's own one-timestep code
    /// (`Dense`, the activations, `LayerNormalization`, ...), when it carries no state and
    /// its output per timestep is a vector.
    fn step(&self, s: &super::Step) -> Option<super::StepCode> {
        if self.step_input.rank() != 1 || self.step_output.rank() != 1 {
            return None;
        }
        let inner = self.inner.step(&super::Step {
            weights: s.weights.clone(),
            mask: None,
        })?;
        (inner.state_len == 0 && !inner.last_only).then_some(inner)
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        let (il, ol, t) = (
            self.step_input.len(),
            self.step_output.len(),
            self.timesteps,
        );
        Some(
            match self
                .inner
                .forward_slices(&self.step_forward(f, Mode::Sample))?
            {
                SliceForward::Same => SliceForward::Same,
                SliceForward::InPlace(code) => SliceForward::InPlace(quote!({
                    let whole: &mut [f32] = x;
                    for t in 0..#t {
                        let x: &mut [f32] = &mut whole[t * #il..(t + 1) * #il];
                        #code;
                    }
                })),
                SliceForward::Map(code) => SliceForward::Map(quote!({
                    let (whole_x, whole_y): (&[f32], &mut [f32]) = (x, y);
                    for t in 0..#t {
                        let x: &[f32] = &whole_x[t * #il..(t + 1) * #il];
                        let y: &mut [f32] = &mut whole_y[t * #ol..(t + 1) * #ol];
                        #code;
                    }
                })),
            },
        )
    }

    fn borrows_training_input(&self) -> bool {
        self.inner.borrows_training_input()
    }

    fn forward_train(&self, f: &Forward) -> TokenStream {
        self.inner.forward_train(&self.step_forward(f, Mode::Batch))
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        self.inner.backward(&Backward {
            state: b.state.clone(),
            mask: None,
            first_weight: b.first_weight,
            need_input_grad: b.need_input_grad,
            last: b.last,
        })
    }

    fn output_activation(&self) -> Option<TokenStream> {
        self.inner.output_activation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::output_shape_for_test;

    fn shape(tokens: TokenStream, input: &[usize]) -> Result<Shape, String> {
        output_shape_for_test(&KIND, tokens, input, "layer `masking`")
    }

    #[test]
    fn applies_the_rule_to_each_timestep() {
        let s = shape(quote!(M = Sequential([TimeDistributed(Dense(4))])), &[5, 3]);
        assert_eq!(s, Ok(Shape(vec![5, 4])));
        let s = shape(
            quote!(M = Sequential([TimeDistributed(Conv1D(2, 3))])),
            &[4, 6, 3],
        );
        assert_eq!(s, Ok(Shape(vec![4, 4, 2])));
        let s = shape(
            quote!(M = Sequential([TimeDistributed(Flatten())])),
            &[4, 2, 3],
        );
        assert_eq!(s, Ok(Shape(vec![4, 6])));
    }

    #[test]
    fn refuses_what_it_cannot_wrap() {
        let e = shape(quote!(M = Sequential([TimeDistributed(Dense(4))])), &[5])
            .err()
            .unwrap_or_default();
        assert!(e.contains("`TimeDistributed` expects an input of rank 2 or more `(timesteps, ...)`, but its input (5,) from layer `masking` has rank 1"), "{e}");
        let e = shape(
            quote!(M = Sequential([TimeDistributed(BatchNormalization())])),
            &[5, 3],
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("`TimeDistributed` cannot wrap `BatchNormalization`; Keras normalises"),
            "{e}"
        );
        let e = shape(
            quote!(M = Sequential([TimeDistributed(Dense(4), x = 1)])),
            &[5, 3],
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("has no argument `x`"), "{e}");
        let e = shape(
            quote!(M = Sequential([TimeDistributed(Conv1D(2, 3))])),
            &[5, 3],
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("one timestep of its input (5, 3) from layer `masking`, shaped (3,)"),
            "{e}"
        );
    }
}
