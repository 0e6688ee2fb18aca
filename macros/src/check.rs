//! `check`: ast -> ir. Walks the layers with a running [`Shape`] (the compile-time twin of
//! Keras's `compute_output_shape`), binds every layer's arguments, and collects every
//! independent error in one pass. After a layer fails, the shape is unknown and later
//! layers get only their own argument checks, so one mistake is reported once.

use crate::args::{bind, Errors, Signature};
use crate::ast::{Arg, LayerCall, ModelDef};
use crate::ir::{CheckedLayer, Model};
use crate::layers::{self, input, LayerInput, MaskRule, Weight};
use crate::shape::{Shape, MAX_ELEMENTS};
use crate::suggest::did_you_mean;
use std::collections::{HashMap, HashSet};
use syn::Error;

/// The largest weight kiln allocates (values); larger ones are almost surely typos.
const MAX_WEIGHT_ELEMENTS: usize = 1 << 30;
/// The most weight values one model may hold in all (8 GiB of `f32`; training needs as
/// much again for gradients, and twice that for Adam's moments). The target's own limit,
/// `isize::MAX` bytes, is checked where the model is compiled (`pipeline.rs`).
pub const MAX_MODEL_WEIGHT_ELEMENTS: usize = 1 << 31;

pub fn check(def: &ModelDef) -> Result<Model, Error> {
    let mut errors = Errors::default();
    let mut attrs = def.attrs.clone();
    let weights_attribute = errors
        .ok(crate::baked::take_attribute(&mut attrs))
        .flatten();
    if def.layers.is_empty() {
        return Err(Error::new(
            def.list_span,
            format!(
                "model `{}` has no layers; expected at least an input shape and one layer",
                def.name
            ),
        ));
    }

    let mut layers_ast: &[LayerCall] = &def.layers;
    let mut shape: Option<Shape> = None;
    // `Input(shape = (None, f))`: every layer must run one timestep at a time.
    let mut variable_timesteps = false;
    // `Input(batch_size = B)` or `Input(batch_shape = (B, ...))`.
    let mut batch_size: Option<usize> = None;
    let mut names = Names::default();
    let first = &def.layers[0];
    let explicit_input = first.class == "Input";
    if explicit_input {
        layers_ast = &def.layers[1..];
        let signature = Signature {
            params: input::SIGNATURE.params,
            required: input::SIGNATURE.required,
        };
        if let Some(b) = errors.ok(bind(first, &signature)) {
            for extra in ["input_shape", "input_dim"] {
                if let Some(arg) = b.get(extra) {
                    errors.push(Error::new_spanned(
                        &arg.expr,
                        format!("`Input` takes `shape`, not `{extra}`"),
                    ));
                }
            }
            if let Some(declared) = errors.ok(input::from_input(&b)) {
                shape = Some(declared.shape);
                variable_timesteps = declared.variable;
                batch_size = declared.batch_size;
            }
            if let Some((name, arg)) = errors.ok(b.string("name")).flatten() {
                errors.ok(names.claim(&name, arg));
            }
        }
        if layers_ast.is_empty() {
            errors.push(Error::new(
                def.list_span,
                format!("model `{}` has an input but no layers; expected at least one layer after `Input`", def.name),
            ));
        }
    }

    let mut checked = Vec::new();
    let mut source = "the model input".to_string();
    let mut mask_from: Option<(String, String)> = None;
    let mut weight_count = 0;
    let mut weight_values = 0u64;
    let mut known_shape = shape.is_some() || !explicit_input;

    for (index, call) in layers_ast.iter().enumerate() {
        let class = call.class.to_string();
        if class == "Input" {
            errors.push(Error::new(
                call.class.span(),
                "`Input` must be the first entry of the layer list",
            ));
            known_shape = false;
            continue;
        }
        let Some(kind) = layers::find(&class) else {
            let known = layers::REGISTRY.iter().map(|k| k.class).chain(["Input"]);
            let hint = did_you_mean(&class, known);
            errors.push(Error::new(
                call.class.span(),
                format!("unknown layer `{class}`{hint}"),
            ));
            known_shape = false;
            continue;
        };
        let Some(bound) = errors.ok(bind(call, &kind.signature)) else {
            known_shape = false;
            continue;
        };

        // Input shape: from `Input`, or `input_shape`/`input_dim` on the first layer only.
        // `Embedding`'s own `input_dim` is its vocabulary size, not an input shape.
        let own_input_dim = kind.signature.params.contains(&"input_dim");
        let declares_input = bound
            .get("input_shape")
            .or(bound.get("input_dim").filter(|_| !own_input_dim));
        if index == 0 && !explicit_input {
            let declared = if own_input_dim && bound.get("input_shape").is_none() {
                None
            } else {
                input::from_first_layer(&bound)
            };
            match declared {
                Some(result) => {
                    let result = errors.ok(result);
                    variable_timesteps = result.as_ref().is_some_and(|(_, v)| *v);
                    shape = result.map(|(s, _)| s);
                }
                None => {
                    errors.push(Error::new(
                        call.class.span(),
                        format!(
                            "model `{}` has no input shape; expected `Input(shape = (...))` before `{class}`, or `input_shape = (...)` on it",
                            def.name
                        ),
                    ));
                }
            }
            known_shape = shape.is_some();
        } else if let Some(arg) = declares_input {
            let keyword = if bound.get("input_shape").is_some() {
                "input_shape"
            } else {
                "input_dim"
            };
            let message = if explicit_input {
                format!("`{keyword}` is not allowed after `Input`, which already declares the input shape")
            } else {
                format!("`{keyword}` is only allowed on the first layer")
            };
            errors.push(Error::new_spanned(&arg.expr, message));
        }

        // Keras names: explicit, or snake_case of the class counted within the model. A
        // wrapper's nested layers are built, and so named, before the wrapper.
        let nested: Vec<String> = ["layer", "backward_layer"]
            .into_iter()
            .filter_map(|param| bound.get(param)?.layer_call())
            .map(|inner| {
                let explicit = inner.args.iter().find_map(|a| match &a.value {
                    crate::ast::Value::Str(s)
                        if a.keyword.as_ref().is_some_and(|k| k == "name") =>
                    {
                        Some((s.clone(), a))
                    }
                    _ => None,
                });
                match explicit {
                    Some((name, arg)) => {
                        errors.ok(names.claim(&name, arg));
                        name
                    }
                    None => names.automatic(layers::keras_class(&inner.class.to_string())),
                }
            })
            .collect();
        let name = match errors.ok(bound.string("name")) {
            Some(Some((name, arg))) => {
                errors.ok(names.claim(&name, arg));
                name
            }
            _ => names.automatic(layers::keras_class(&class)),
        };
        let Some(input_shape) = shape.clone().filter(|_| known_shape) else {
            // No input shape after an earlier error: still report argument mistakes.
            errors.ok(bound.check_shape_free());
            continue;
        };
        let layer_input = LayerInput {
            shape: &input_shape,
            source: &source,
        };
        let Some(mut code) = errors.ok((kind.build)(&bound, &layer_input)) else {
            known_shape = false;
            continue;
        };
        code.name_nested(&nested);

        match (code.mask_rule(), &mask_from) {
            (MaskRule::Refuse, Some((mask_layer, mask_class))) => {
                let why = code
                    .mask_refusal()
                    .unwrap_or_else(|| "Keras would drop it silently".to_string());
                errors.push(Error::new(
                    call.class.span(),
                    format!(
                        "`{class}` cannot take the mask produced by layer `{mask_layer}` (`{mask_class}`); {why}\n  help: remove the `{mask_class}` layer, or put `{class}` before it"
                    ),
                ));
            }
            (MaskRule::Produce, _) => mask_from = Some((name.clone(), class.clone())),
            (MaskRule::Consume, _) => mask_from = None,
            _ => {}
        }

        if variable_timesteps {
            let step = code.step(&layers::Step {
                weights: quote::quote!(self),
                mask: None,
            });
            let model_input = variable_input(&checked, &input_shape);
            if checked.is_empty() && input_shape.rank() == 1 && code.input_ids().is_none() {
                errors.push(Error::new(
                    call.class.span(),
                    format!(
                        "`{class}` cannot take the model input `(None,)`: a rank-1 sequence of any length is integer ids, for `Embedding` as the first layer\n  help: declare `Input(shape = (None, 1))` for one feature per timestep"
                    ),
                ));
            } else if step.is_none() {
                let why = code.step_refusal().unwrap_or_else(|| format!(
                    "`{class}` needs a fixed number of timesteps or the whole sequence at once\n  help: give the input a fixed number of timesteps, or remove `{class}`"
                ));
                errors.push(Error::new(
                    call.class.span(),
                    format!(
                        "`{class}` cannot run on sequences of variable length: the model input `{model_input}` (`Input(shape = (None, ...))`) runs one timestep at a time, and {why}"
                    ),
                ));
            }
        }

        let output = code.output_shape();
        let weights = code.weights();
        if errors
            .ok(check_sizes(call, &name, &output, &weights))
            .is_none()
        {
            known_shape = false;
            continue;
        }
        // Each weight is at most 2^30 values (checked above), and the sum stops growing
        // after the first error: no overflow.
        let before = weight_values;
        weight_values += weights.iter().map(|w| w.shape.len() as u64).sum::<u64>();
        if before <= MAX_MODEL_WEIGHT_ELEMENTS as u64
            && weight_values > MAX_MODEL_WEIGHT_ELEMENTS as u64
        {
            errors.push(Error::new_spanned(
                &call.call,
                format!(
                    "model `{}` is too large: with layer `{name}` its weights hold {weight_values} values, more than the {MAX_MODEL_WEIGHT_ELEMENTS} kiln allocates per model",
                    def.name
                ),
            ));
        }
        weight_values = weight_values.min(MAX_MODEL_WEIGHT_ELEMENTS as u64 + 1);

        let first_weight = weight_count;
        weight_count += weights.len();
        source = format!("layer `{name}`");
        shape = Some(output.clone());
        checked.push(CheckedLayer {
            name,
            class: layers::keras_class(&class).to_string(),
            span: call.class.span(),
            input: input_shape,
            output,
            first_weight,
            weights,
            code,
        });
    }

    let stateful = errors
        .ok(check_stateful(&checked, batch_size))
        .unwrap_or(false);
    errors.into_result()?;
    let input = match (shape.is_some(), checked.first()) {
        (_, Some(first)) => first.input.clone(),
        _ => {
            return Err(Error::new(
                def.list_span,
                format!("model `{}` has no layers", def.name),
            ))
        }
    };
    let baked = match &weights_attribute {
        Some(attribute) => {
            let shapes = checked
                .iter()
                .flat_map(|l| &l.weights)
                .map(|w| w.shape.0.clone());
            let weights: Vec<(String, Vec<usize>)> = crate::ir::weight_names(&checked)
                .into_iter()
                .zip(shapes)
                .collect();
            Some(crate::baked::read(attribute, &weights)?)
        }
        None => None,
    };
    Ok(Model {
        attrs,
        vis: def.vis.clone(),
        name: def.name.clone(),
        input,
        layers: checked,
        baked,
        batch_size,
        stateful,
        variable_timesteps,
    })
}

/// Keras's rule for `stateful = True` (`layers/rnn/rnn.py`, `build`): the batch size must
/// be static, as each sample of a batch carries its own state into the next call. kiln
/// carries that state one timestep at a time (`predict_stateful`), so every layer must
/// also have a one-timestep form. Whether the model has a stateful layer.
fn check_stateful(checked: &[CheckedLayer], batch_size: Option<usize>) -> Result<bool, Error> {
    let Some((span, layer)) = checked
        .iter()
        .find_map(|l| l.code.stateful().map(|span| (span, l)))
    else {
        return Ok(false);
    };
    let class = &layer.class;
    let Some(first) = checked.first() else {
        return Ok(false);
    };
    let input = &first.input;
    if batch_size.is_none() {
        let per_sample = input
            .0
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::new(
            span,
            format!(
                "`stateful = True` of `{class}` needs a fixed batch size: each sample of a batch carries its state into the next call, and the model input declares no batch size\n  help: declare one on the input, e.g. `Input(batch_shape = (1, {per_sample}))` or `Input(shape = ..., batch_size = 1)`: one independent stream per sample"
            ),
        ));
    }
    let ids = first.code.input_ids().is_some();
    if !(input.rank() == 2 || input.rank() == 1 && ids) {
        return Err(Error::new(
            span,
            format!(
                "`stateful = True` of `{class}` needs a model input of timesteps, `(timesteps, features)`, to carry the state one timestep at a time, found the model input {input}"
            ),
        ));
    }
    let mut state_len = 0usize;
    let (mut layer_scratch, mut width) = (0usize, if ids { 1 } else { input.last() });
    for other in checked {
        let step = other.code.step(&layers::Step {
            weights: quote::quote!(self),
            mask: None,
        });
        state_len = state_len.saturating_add(step.as_ref().map_or(0, |s| s.state_len));
        layer_scratch = layer_scratch.max(step.as_ref().map_or(0, |s| s.scratch_len));
        width = width.max(other.output.last());
        if step.is_none() {
            let refusal = other.code.step_refusal();
            // The refusal's own help is about variable-length inputs; this one is not.
            let refusal =
                refusal.map(|r| r.split("\n  help:").next().unwrap_or_default().to_string());
            let why = refusal.unwrap_or_else(|| {
                format!(
                    "`{}` needs a fixed number of timesteps or the whole sequence at once",
                    other.class
                )
            });
            return Err(Error::new(
                span,
                format!(
                    "`stateful = True` of `{class}` is not supported in this model: kiln carries the state from call to call one timestep at a time (`predict_stateful`), and layer `{}` cannot run one timestep at a time: {why}\n  help: without `stateful = True` each call runs its whole sequences from zero states",
                    other.name
                ),
            ));
        }
    }
    let batch = batch_size.unwrap_or(1);
    let (_, _, scratch) = layers::step_scratch(layer_scratch, width);
    let per_state = state_len.saturating_add(scratch);
    if batch.saturating_mul(per_state) > MAX_ELEMENTS {
        return Err(Error::new(
            span,
            format!(
                "`stateful = True` of `{class}` with the model's batch size {batch} needs {batch} states of {state_len} values (and {scratch} values of the step's scratch each), more than the {MAX_ELEMENTS} kiln holds in one value (`new_states()` returns them together)\n  help: a smaller batch size in the model input"
            ),
        ));
    }
    Ok(true)
}

/// A `(None, features)` (or `Embedding`'s `(None,)`) model input, for messages.
fn variable_input(checked: &[CheckedLayer], current: &Shape) -> String {
    let input = checked.first().map_or(current, |l| &l.input);
    match input.rank() {
        1 => "(None,)".to_string(),
        _ => format!("(None, {})", input.last()),
    }
}

/// Keras layer names within one model: every name unique, automatic ones counted per class
/// (`dense`, `dense_1`, ...) and skipping names already taken.
#[derive(Default)]
struct Names {
    taken: HashSet<String>,
    counters: HashMap<String, usize>,
}

impl Names {
    /// Takes an explicit `name = "..."`; an error if an earlier layer has it.
    fn claim(&mut self, name: &str, arg: &Arg) -> Result<(), Error> {
        if self.taken.insert(name.to_string()) {
            Ok(())
        } else {
            Err(Error::new_spanned(
                &arg.expr,
                format!("layer name `{name}` is already used by an earlier layer; Keras requires unique layer names"),
            ))
        }
    }

    /// The next automatic name for `class`.
    fn automatic(&mut self, class: &str) -> String {
        let base = layers::snake_case(class);
        let n = self.counters.entry(base.clone()).or_insert(0);
        loop {
            let name = if *n == 0 {
                base.clone()
            } else {
                format!("{base}_{n}")
            };
            *n += 1;
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }
}

/// Refuses outputs and weights too large to be anything but a typo (and that would not fit
/// a `predict` stack or memory).
fn check_sizes(
    call: &LayerCall,
    name: &str,
    output: &Shape,
    weights: &[Weight],
) -> Result<(), Error> {
    let class = &call.class;
    if output.elements().is_none_or(|n| n > MAX_ELEMENTS) {
        return Err(Error::new(
            class.span(),
            format!("output shape {output} of `{class}` is too large: kiln holds at most {MAX_ELEMENTS} values per sample"),
        ));
    }
    if let Some(w) = weights
        .iter()
        .find(|w| w.shape.elements().is_none_or(|n| n > MAX_WEIGHT_ELEMENTS))
    {
        return Err(Error::new_spanned(
            &call.call,
            format!(
                "weight `{name}/{}` of shape {} is too large: kiln allocates at most {MAX_WEIGHT_ELEMENTS} values per weight",
                w.path(), w.shape
            ),
        ));
    }
    Ok(())
}
