//! The checked model: what `check.rs` produces and `expand.rs` consumes. Every shape is
//! resolved and every argument validated, so expansion has no error paths.

use crate::baked::Baked;
use crate::layers::{Layer, Weight};
use crate::shape::Shape;
use proc_macro2::Span;
use syn::{Attribute, Ident, Visibility};

pub struct Model {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub input: Shape,
    pub layers: Vec<CheckedLayer>,
    /// The weights of `#[weights = "..."]`, read and checked.
    pub baked: Option<Baked>,
    /// The batch size the model input fixes (`Input(batch_shape = (B, ...))`).
    pub batch_size: Option<usize>,
    /// A layer has `stateful = True` (then `batch_size` is set and the model streams).
    pub stateful: bool,
    /// `Input(shape = (None, features))`: the input's timesteps (1 in `input`) vary.
    pub variable_timesteps: bool,
}

pub struct CheckedLayer {
    /// Keras layer name (`dense_1`).
    pub name: String,
    /// Keras class name (`Dense`).
    pub class: String,
    pub span: Span,
    pub input: Shape,
    pub output: Shape,
    /// Index of the layer's first weight among the model's weights.
    pub first_weight: usize,
    pub weights: Vec<Weight>,
    pub code: Box<dyn Layer>,
}

impl Model {
    pub fn output(&self) -> &Shape {
        self.layers.last().map_or(&self.input, |l| &l.output)
    }
}

/// Every weight's Keras name (`dense_1/kernel`), in the model's order.
pub fn weight_names(layers: &[CheckedLayer]) -> Vec<String> {
    layers
        .iter()
        .flat_map(|l| {
            l.weights
                .iter()
                .map(move |w| format!("{}/{}", l.name, w.path()))
        })
        .collect()
}
