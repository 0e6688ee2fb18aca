//! The layer registry: one file per Keras layer kind, each exporting a [`LayerKind`] —
//! its Keras signature, its shape rule and its code generation. Adding a layer means adding
//! its file and one line to [`REGISTRY`].

use crate::args::{Bound, Signature};
use crate::shape::{Mode, Shape};
use proc_macro2::TokenStream;
use syn::Error;

pub mod activation;
pub mod activity_regularization;
pub mod batch_normalization;
pub mod bidirectional;
pub mod conv;
pub mod conv1d;
pub mod conv2d;
pub mod conv2d_transpose;
pub mod cropping;
pub mod dense;
pub mod depthwise_conv2d;
pub mod dropout;
pub mod elu;
pub mod embedding;
pub mod flatten;
pub mod global_pooling;
pub mod gru;
pub mod input;
pub mod lambda;
pub mod layer_normalization;
pub mod leaky_relu;
pub mod lstm;
pub mod masking;
pub mod permute;
pub mod pooling;
pub mod prelu;
pub mod recurrent;
pub mod relu;
pub mod repeat_vector;
pub mod reshape;
pub mod separable_conv2d;
pub mod simple_rnn;
pub mod softmax;
pub mod thresholded_relu;
pub mod time_distributed;
pub mod upsampling;
pub mod zero_padding;

/// Every layer kind the DSL knows, by Keras class name.
pub const REGISTRY: &[LayerKind] = &[
    activation::KIND,
    dense::KIND,
    flatten::KIND,
    permute::KIND,
    repeat_vector::KIND,
    reshape::KIND,
    elu::KIND,
    leaky_relu::KIND,
    prelu::KIND,
    relu::KIND,
    softmax::KIND,
    thresholded_relu::KIND,
    dropout::KIND,
    activity_regularization::KIND,
    masking::KIND,
    lambda::KIND,
    batch_normalization::KIND,
    layer_normalization::KIND,
    conv1d::KIND,
    conv2d::KIND,
    conv1d::KERAS1_KIND,
    conv2d::KERAS1_KIND,
    depthwise_conv2d::KIND,
    separable_conv2d::KIND,
    conv2d_transpose::KIND,
    pooling::MAX_POOLING_1D,
    pooling::MAX_POOLING_2D,
    pooling::AVERAGE_POOLING_1D,
    pooling::AVERAGE_POOLING_2D,
    global_pooling::GLOBAL_MAX_POOLING_1D,
    global_pooling::GLOBAL_MAX_POOLING_2D,
    global_pooling::GLOBAL_AVERAGE_POOLING_1D,
    global_pooling::GLOBAL_AVERAGE_POOLING_2D,
    zero_padding::ZERO_PADDING_1D,
    zero_padding::ZERO_PADDING_2D,
    upsampling::UP_SAMPLING_1D,
    upsampling::UP_SAMPLING_2D,
    cropping::CROPPING_1D,
    cropping::CROPPING_2D,
    embedding::KIND,
    simple_rnn::KIND,
    lstm::KIND,
    gru::KIND,
    bidirectional::KIND,
    time_distributed::KIND,
];

/// A layer kind's constructor: bound arguments and input -> checked layer.
pub type Build = fn(&Bound, &LayerInput) -> Result<Box<dyn Layer>, Error>;

/// A layer kind: how to read its arguments and check them against its input.
pub struct LayerKind {
    /// Keras's class name, as written in the DSL.
    pub class: &'static str,
    pub signature: Signature,
    /// Reads the bound arguments and checks them against the input. Errors carry spans.
    pub build: Build,
}

/// What a layer is given: its input shape and where that shape came from.
pub struct LayerInput<'a> {
    pub shape: &'a Shape,
    /// "layer `dense_1`" or "the model input", for error messages.
    pub source: &'a str,
}

impl LayerInput<'_> {
    /// How messages name the input: "its input (3, 4) from layer `dense_1`", or
    /// "the model input (12,)".
    pub fn phrase(&self) -> String {
        if self.source.starts_with("layer") {
            format!("its input {} from {}", self.shape, self.source)
        } else {
            format!("{} {}", self.source, self.shape)
        }
    }
}

/// How a layer treats a Keras mask arriving with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskRule {
    /// Cannot take a mask (Keras would drop it with a warning; kiln refuses to compile).
    Refuse,
    /// Passes the mask on unchanged (Keras `supports_masking = True`).
    Propagate,
    /// Computes a new mask from its input (`Masking`).
    Produce,
    /// Uses the mask and outputs none (Keras `supports_masking` with `compute_mask`
    /// returning `None`: `GlobalAveragePooling1D`).
    Consume,
}

/// A weight of a layer: its Keras name suffix (`kernel`) and shape, the runtime
/// `Regularizer` / `Constraint` expressions training applies to it, and whether it is
/// trainable.
pub struct Weight {
    pub suffix: &'static str,
    /// The path of the nested layer holding it, with a trailing `/`
    /// (`forward_lstm/` in a `Bidirectional`), or empty for the layer's own weights.
    pub scope: String,
    pub shape: Shape,
    pub regularizer: Option<TokenStream>,
    pub constraint: Option<TokenStream>,
    pub update: Update,
}

/// How training changes a weight: the runtime's `kiln::WeightUpdate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update {
    /// Trainable (Keras's `trainable = True`): the optimizer updates it from its gradient.
    Optimizer,
    /// Non-trainable, a moving average with this momentum of a statistic that the layer's
    /// backward code writes into the weight's gradient slot (`grads.slot(first_weight + k)`,
    /// overwriting it); the trainer applies `w = w * m + statistic * (1 - m)` after the step.
    /// Such a weight takes no regularizer or constraint.
    MovingAverage(f64),
}

impl Weight {
    /// A trainable weight with no regularizer and no constraint.
    pub fn new(suffix: &'static str, shape: Shape) -> Weight {
        Weight {
            suffix,
            scope: String::new(),
            shape,
            regularizer: None,
            constraint: None,
            update: Update::Optimizer,
        }
    }

    /// A non-trainable weight that training moves towards a batch statistic (see
    /// [`Update::MovingAverage`]).
    pub fn moving_average(suffix: &'static str, shape: Shape, momentum: f64) -> Weight {
        Weight {
            update: Update::MovingAverage(momentum),
            ..Weight::new(suffix, shape)
        }
    }

    /// Its Keras path relative to its layer: the scope, then the suffix.
    pub fn path(&self) -> String {
        format!("{}{}", self.scope, self.suffix)
    }

    /// Whether the optimizer trains it (Keras's `trainable`).
    pub fn trainable(&self) -> bool {
        self.update == Update::Optimizer
    }

    /// The runtime `kiln::WeightUpdate` expression.
    pub fn update_tokens(&self) -> TokenStream {
        match self.update {
            Update::Optimizer => quote::quote!(::kiln::WeightUpdate::Optimizer),
            Update::MovingAverage(momentum) => {
                // The checker only accepts finite momenta; the guard keeps `Literal` from
                // panicking all the same.
                let momentum = proc_macro2::Literal::f64_suffixed(if momentum.is_finite() {
                    momentum
                } else {
                    0.0
                });
                quote::quote!(::kiln::WeightUpdate::MovingAverage { momentum: #momentum })
            }
        }
    }
}

/// What the expansion needs to emit one layer's forward code.
///
/// The code runs where these variables are in scope:
/// - `x`: the layer's input, an owned tensor of `input`'s shape in `mode`
///   (`kiln::__private::Sample<R, C>` or `Batch<R>`);
/// - `pass: &mut kiln::__private::Pass`: whether this is training, the activity loss so far;
/// - `mask` (only when `mask` is `Some`): the Keras mask, one `bool` per position (per
///   column of the tensor's matrix, over all samples in a batch); `true` = keep.
pub struct Forward {
    pub mode: Mode,
    /// Expression for the layer's state (`self.l0`), when it has a runtime struct.
    pub state: TokenStream,
    /// `Some(quote!(mask))` when a mask arrives with the input; it is a `&[bool]` via deref.
    pub mask: Option<TokenStream>,
}

/// What the expansion needs to emit one layer's backward code (always on a batch).
///
/// The code runs where these variables are in scope:
/// - `x: &Batch<..>`: the layer's input in the forward pass; `y: &Batch<..>`: its output;
/// - `cache`: the second value `forward_train` returned;
/// - `dy: Batch<..>` (owned): the loss gradient with respect to `y`, or — when `fused` is
///   true, which only happens for the last layer when `output_activation` is `Some` — with
///   respect to the input of that final activation (the loss fused it with softmax/sigmoid);
/// - `grads: &mut kiln::__private::Gradients`: `grads.slot(first_weight + k)` is the
///   gradient of the layer's weight `k`, to be accumulated into (`+=`);
/// - `pass`, and `mask` when `mask` is `Some`, as in [`Forward`].
pub struct Backward {
    pub state: TokenStream,
    pub mask: Option<TokenStream>,
    pub first_weight: usize,
    /// Whether the model needs the gradient with respect to `x` (false for the first layer:
    /// then the code may skip computing it and must evaluate to `()`).
    pub need_input_grad: bool,
    /// Whether `fused` may be true at run time for this layer (it is the last one).
    pub last: bool,
}

/// How a layer runs in `predict_into`, where every tensor is a row-major slice of the
/// caller's memory instead of a value on the stack (see `scratch.rs`). The code runs with
/// `pass` and, when a mask arrives, `mask` in scope, as in [`Forward`] (`Mode::Sample`,
/// whose `state` names the layer's weights).
pub enum SliceForward {
    /// Changes the values in place: `x: &mut [f32]` (one sample). A `Produce` layer's code
    /// evaluates to its mask (`[bool; positions]`).
    InPlace(TokenStream),
    /// Writes the output from the input: `x: &[f32]`, `y: &mut [f32]` (one sample each;
    /// `y` holds stale values on entry).
    Map(TokenStream),
    /// The output's values are the input's (Reshape, Flatten, layers that are identities in
    /// inference): no code, no copy.
    Same,
}

/// What the expansion gives a layer's one-timestep code ([`Layer::step`]), for
/// `kiln::Streaming`, `predict_sequence` and `predict_chunk` (`expand.rs`, `streaming`).
pub struct Step {
    /// Expression for the layer's weights (`self.l0`).
    pub weights: TokenStream,
    /// `Some(quote!(keep))` when a mask arrives with the input: a `bool`, whether this
    /// timestep is kept.
    pub mask: Option<TokenStream>,
}

/// A layer's code for one timestep. It runs with `state: &mut [f32]` in scope, the
/// `state_len` values the layer carries from one timestep to the next (zeros at the start
/// of a sequence), and `keep` as in [`Step`]; `code` is a [`SliceForward`] over one
/// timestep: `x` holds the input's last axis (one id for `Embedding`), `y` the output's. A
/// `Produce` layer's code (`InPlace`, or `Map` for `Embedding`) evaluates to the timestep's
/// `keep`.
pub struct StepCode {
    pub state_len: usize,
    /// Scratch the code uses, as `scratch: &mut [f32]` (at least this many values, at a
    /// cache-line boundary, holding whatever the last step left: the code writes before it
    /// reads).
    pub scratch_len: usize,
    pub code: SliceForward,
    /// The layer's output for a whole sequence is its output at the last timestep only
    /// (a recurrent layer without `return_sequences`): the layers after it see one vector,
    /// run once at the end of `predict_sequence`, and the model is not `kiln::Streaming`.
    pub last_only: bool,
}

impl StepCode {
    /// A layer that carries nothing between timesteps and keeps its output per timestep.
    pub fn stateless(code: SliceForward) -> StepCode {
        StepCode {
            state_len: 0,
            scratch_len: 0,
            code,
            last_only: false,
        }
    }
}

/// The parts of a streaming step's scratch (`kiln::StreamState`'s `W` values) for layers
/// whose one-timestep code needs at most `layer_scratch` values and that pass at most
/// `width` values from one to the next: the layer scratch, then two buffers of the
/// returned width, each rounded up to whole cache lines (16 values). Returns
/// `(layer_scratch, buffer_width, total)`.
pub fn step_scratch(layer_scratch: usize, width: usize) -> (usize, usize, usize) {
    let lines = |n: usize| n.div_ceil(16).saturating_mul(16);
    let (layer_scratch, width) = (lines(layer_scratch), lines(width));
    (
        layer_scratch,
        width,
        layer_scratch.saturating_add(width.saturating_mul(2)),
    )
}

/// A checked layer: everything it needs is resolved, so code generation cannot fail.
pub trait Layer {
    fn output_shape(&self) -> Shape;

    /// Keras weights, in Keras's order (`kernel` before `bias`).
    fn weights(&self) -> Vec<Weight> {
        Vec::new()
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Refuse
    }

    /// Receives the Keras names of the layers given to this one as arguments (a wrapper's
    /// `layer`, then `backward_layer`), which Keras names before the wrapper itself; their
    /// weights are scoped by them (`bidirectional/forward_lstm/lstm_cell/kernel`).
    fn name_nested(&mut self, _names: &[String]) {}

    /// Why a `Refuse` layer cannot take a mask, when the reason is not that Keras drops it.
    fn mask_refusal(&self) -> Option<String> {
        None
    }

    /// The runtime type holding the layer's weights, if it has any.
    fn state_type(&self) -> Option<TokenStream> {
        None
    }

    /// Expression constructing the state from `seed` (a `u64` variable); the layer's first
    /// weight is number `first_weight` of the model.
    fn init(&self, _seed: &TokenStream, _first_weight: usize) -> TokenStream {
        TokenStream::new()
    }

    /// Expression constructing the state, in a `const fn`, from the layer's weights baked
    /// into the binary: `weights[k]` is an expression of type `&'static [f32]` holding weight
    /// `k` in Keras's layout. Layers with weights must override this; the default suits
    /// layers whose state does not depend on the seed.
    fn baked(&self, _weights: &[TokenStream]) -> TokenStream {
        self.init(&quote::quote!(0u64), 0)
    }

    /// Expression computing the output from `x`, an owned tensor of the input shape.
    /// A layer whose `mask_rule` is `Produce` returns `(output, mask)` instead, the mask
    /// being `[bool; positions]` in `Mode::Sample` and `Vec<bool>` in `Mode::Batch`.
    fn forward(&self, f: &Forward) -> TokenStream;

    /// The layer on slices, for `predict_into`. `None` makes the expansion copy the input
    /// into a stack tensor, run [`Layer::forward`] and copy the output back, which is fine
    /// for small tensors only: every layer that may see large ones implements this.
    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        None
    }

    /// Whether `forward_train` reads `x` as a borrowed `&Batch` instead of owning a pooled
    /// copy of the input: layers that write a new tensor anyway (Dense's product) skip the
    /// copy.
    fn borrows_training_input(&self) -> bool {
        false
    }

    /// Like `forward` in `Mode::Batch` during training, but evaluating to `(output, cache)`
    /// where `cache` is whatever `backward` needs beyond the input and output (a `Produce`
    /// layer evaluates to `((output, mask), cache)`). `x` is owned, or borrowed when
    /// `borrows_training_input`.
    fn forward_train(&self, f: &Forward) -> TokenStream {
        let forward = self.forward(f);
        quote::quote!((#forward, ()))
    }

    /// Expression evaluating to the gradient with respect to the layer's input (a batch
    /// tensor of the input shape), accumulating weight gradients on the way; see
    /// [`Backward`]. `None` when the layer cannot be trained (a `Lambda` without
    /// `backward`): the model then gets no `Trainable` implementation.
    fn backward(&self, _b: &Backward) -> Option<TokenStream> {
        None
    }

    /// `Some(input_dim)` for a layer whose input is integer ids (`Embedding`, always
    /// first): the model's `INPUT_IDS`.
    fn input_ids(&self) -> Option<usize> {
        None
    }

    /// The activation the layer applies last, when a loss may fuse its gradient with it
    /// (softmax with cross-entropy, sigmoid with binary cross-entropy).
    fn output_activation(&self) -> Option<TokenStream> {
        None
    }

    /// The layer on one timestep of a sequence `(timesteps, features)` (or on the vector a
    /// `last_only` layer before it left), carrying its state between timesteps: what lets a
    /// model run as `kiln::Streaming` and take `Input(shape = (None, features))`. Feeding
    /// a sequence step by step must give the layer's output for the whole sequence, row by
    /// row. `None` (the default) when the layer needs a fixed number of timesteps or mixes
    /// them (Flatten, Reshape, strided or non-causal convolutions, pooling, `go_backwards`,
    /// `Bidirectional`): a model with such a layer has no streaming form, and after
    /// `Input(shape = (None, ...))` it is an error.
    fn step(&self, _s: &Step) -> Option<StepCode> {
        None
    }

    /// Why [`Layer::step`] is `None`, when the reason is more specific than needing a fixed
    /// number of timesteps: it completes "the model input ... runs one timestep at a time,
    /// and ..." and may end with its own `\n  help: ...` line.
    fn step_refusal(&self) -> Option<String> {
        None
    }

    /// Where `stateful = True` is written, for a layer that carries its state from one
    /// call to the next (Keras's recurrent layers); `check.rs` then requires a fixed batch
    /// size and a model that runs one timestep at a time.
    fn stateful(&self) -> Option<proc_macro2::Span> {
        None
    }

    /// Stack bytes the layer's `forward` (`Mode::Sample`) and `forward_slices` code keeps
    /// beyond its input and output (a recurrent layer's scratch array), which the
    /// `PREDICT_STACK_BYTES` and `PREDICT_INTO_STACK_BYTES` bounds add.
    fn work_stack_bytes(&self) -> usize {
        0
    }
}

/// Keras 1 class names the DSL accepts, with the Keras 3 class Keras builds for each: layers
/// are named and summarised under the latter (`Convolution2D` -> `conv2d (Conv2D)`).
const KERAS1_CLASSES: &[(&str, &str)] = &[("Convolution1D", "Conv1D"), ("Convolution2D", "Conv2D")];

/// The Keras 3 class of `class` (itself, unless it is an older spelling).
pub fn keras_class(class: &str) -> &str {
    KERAS1_CLASSES
        .iter()
        .find(|(old, _)| *old == class)
        .map_or(class, |(_, new)| new)
}

/// The kind registered under `class`.
pub fn find(class: &str) -> Option<&'static LayerKind> {
    REGISTRY.iter().find(|k| k.class == class)
}

/// Keras's automatic layer name for a class: its snake_case (`ReLU` -> `re_lu`).
pub fn snake_case(class: &str) -> String {
    // Keras: re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name), then "([a-z])([A-Z])".
    let chars: Vec<char> = class.chars().collect();
    let mut first = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let starts_word = i > 0
            && c.is_ascii_uppercase()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        if starts_word {
            first.push('_');
        }
        first.push(c);
    }
    let chars: Vec<char> = first.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() && chars[i - 1].is_ascii_lowercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// For layer unit tests: builds the first layer of `tokens` (a `model!` body) with `kind`
/// on an input of shape `input` from `source`, giving its output shape or its errors joined
/// by ` | `.
#[cfg(test)]
pub(crate) fn output_shape_for_test(
    kind: &LayerKind,
    tokens: TokenStream,
    input: &[usize],
    source: &str,
) -> Result<Shape, String> {
    let inv: crate::ast::Invocation = syn::parse2(tokens).map_err(|e| e.to_string())?;
    let b =
        crate::args::bind(&inv.models[0].layers[0], &kind.signature).map_err(|e| e.to_string())?;
    let shape = Shape(input.to_vec());
    let input = LayerInput {
        shape: &shape,
        source,
    };
    (kind.build)(&b, &input)
        .map(|l| l.output_shape())
        .map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_names_match_keras() {
        assert_eq!(snake_case("Dense"), "dense");
        assert_eq!(snake_case("ReLU"), "re_lu");
        assert_eq!(snake_case("PReLU"), "p_re_lu");
        assert_eq!(snake_case("LeakyReLU"), "leaky_re_lu");
        assert_eq!(snake_case("ELU"), "elu");
        assert_eq!(snake_case("Conv2D"), "conv2d");
        assert_eq!(snake_case("RepeatVector"), "repeat_vector");
        assert_eq!(
            snake_case("ActivityRegularization"),
            "activity_regularization"
        );
    }
}
