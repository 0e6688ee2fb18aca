//! `Bidirectional(layer, merge_mode = "concat", weights = None, backward_layer = None)`: a
//! recurrent layer (`SimpleRNN`, `LSTM`, `GRU`) run over the sequence in both directions,
//! the two outputs merged (runtime: `kiln_runtime::layers::Bidirectional`).
//!
//! Keras 3 (`layers/rnn/bidirectional.py`): the forward layer is the wrapped one, named
//! `forward_<name>`; the backward layer is its copy with `go_backwards` flipped, named
//! `backward_<name>`, or `backward_layer` under its own name (same class and units here,
//! the opposite `go_backwards`, the same `return_sequences`). With `return_sequences` the
//! backward outputs are reversed to time order and each direction outputs zeros at masked
//! timesteps (Keras forces `zero_output_for_mask`); `merge_mode` `"concat"` doubles the
//! last axis, `"sum"`, `"mul"` and `"ave"` keep it. `merge_mode = None` returns two outputs
//! and is refused, as are `weights` (load weights by name instead) and an activity
//! regularizer on the wrapped layer.
//!
//! Shape and mask rules are the wrapped layer's (`recurrent.rs`). Weights: the forward
//! layer's then the backward layer's, `bidirectional/forward_lstm/lstm_cell/kernel`, ...

use super::recurrent::{build_recurrent, Cell, Recurrent};
use super::time_distributed::wrapped_layer;
use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward, Weight};
use crate::args::{bind, Bound, Errors, Signature};
use crate::ast::{LayerCall, Value};
use crate::shape::Shape;
use crate::suggest::did_you_mean;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Bidirectional",
    signature: Signature {
        params: &["layer", "merge_mode", "weights", "backward_layer"],
        required: 1,
    },
    build,
};

const RECURRENT: &[&str] = &["SimpleRNN", "LSTM", "GRU"];
/// The accepted `merge_mode`s, as the DSL spells them.
const MERGE_MODES: &[&str] = &["\"concat\"", "\"sum\"", "\"mul\"", "\"ave\""];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Merge {
    Concat,
    Sum,
    Mul,
    Ave,
}

struct Bidirectional {
    forward: Recurrent,
    backward: Recurrent,
    merge: Merge,
    /// Whether `backward_layer` was given (it keeps its own name).
    custom_backward: bool,
    /// The weight scopes of the two layers (`forward_lstm/`, `backward_lstm/`).
    scopes: [String; 2],
}

fn merge_mode(b: &Bound) -> Result<Merge, Error> {
    let Some(arg) = b.get("merge_mode") else {
        return Ok(Merge::Concat);
    };
    match &arg.value {
        Value::Str(s) => match s.as_str() {
            "concat" => Ok(Merge::Concat),
            "sum" => Ok(Merge::Sum),
            "mul" => Ok(Merge::Mul),
            "ave" => Ok(Merge::Ave),
            other => {
                let shown = format!("{other:?}");
                let hint = did_you_mean(&shown, MERGE_MODES.iter().copied());
                let list: Vec<String> = MERGE_MODES.iter().map(|m| format!("`{m}`")).collect();
                Err(Error::new_spanned(
                    &arg.expr,
                    format!(
                        "unknown `merge_mode` {shown} of `Bidirectional`{hint}\n  expected one of: {}",
                        list.join(", ")
                    ),
                ))
            }
        },
        Value::None => Err(Error::new_spanned(
            &arg.expr,
            "`merge_mode = None` of `Bidirectional` returns the two directions as two outputs, but kiln models have a single output\n  help: use `\"concat\"` to keep both directions side by side",
        )),
        other => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected a string for `merge_mode` of `Bidirectional`, found {}",
                other.describe()
            ),
        )),
    }
}

/// The cell of a recurrent class, reading GRU's `reset_after`.
fn cell(b: &Bound) -> Result<Cell, Error> {
    Ok(match b.call.class.to_string().as_str() {
        "LSTM" => Cell::Lstm,
        "GRU" => Cell::Gru(b.boolean("reset_after", true)?),
        _ => Cell::SimpleRnn,
    })
}

/// Resolves `param` (`layer` or `backward_layer`) to a recurrent layer call.
fn recurrent_call(b: &Bound, param: &str) -> Result<Option<LayerCall>, Error> {
    let Some((call, kind)) = wrapped_layer(b, param)? else {
        return Ok(None);
    };
    if !RECURRENT.contains(&kind.class) {
        return Err(Error::new(
            call.class.span(),
            format!(
                "`Bidirectional` wraps a recurrent layer (`SimpleRNN`, `LSTM` or `GRU`), but its `{param}` is `{}`",
                kind.class
            ),
        ));
    }
    Ok(Some(call))
}

/// Builds the wrapped layer from `call` on the wrapper's input, refusing what the wrapper
/// does not support inside it.
fn build_inner(call: &LayerCall, input: &LayerInput) -> Result<Recurrent, Error> {
    let kind = super::find(&call.class.to_string())
        .ok_or_else(|| Error::new(call.class.span(), "unknown layer"))?;
    let b = bind(call, &kind.signature)?;
    let mut errors = Errors::default();
    if let Some(arg) = b
        .get("activity_regularizer")
        .filter(|a| !matches!(a.value, Value::None))
    {
        errors.push(Error::new_spanned(
            &arg.expr,
            format!(
                "`activity_regularizer` of a `{}` inside `Bidirectional` is not supported yet",
                b.class()
            ),
        ));
    }
    let cell = errors.ok(cell(&b));
    let layer = cell.and_then(|cell| errors.ok(build_recurrent(&b, input, cell)));
    if let Some(span) = layer.as_ref().and_then(|l| l.stateful) {
        errors.push(Error::new(
            span,
            format!(
                "`stateful = True` of `{}` inside `Bidirectional` is not supported: kiln carries a stateful layer's state one timestep at a time, and the backward direction reads each call's sequence from its end\n  help: remove it, or use a unidirectional stateful layer",
                b.class()
            ),
        ));
    }
    errors.into_result()?;
    layer.ok_or_else(|| Error::new_spanned(&call.call, "invalid recurrent layer"))
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let merge = errors.ok(merge_mode(b));
    if let Some(arg) = b.get("weights").filter(|a| !matches!(a.value, Value::None)) {
        errors.push(Error::new_spanned(
            &arg.expr,
            "`weights` of `Bidirectional` is not supported; set weights by name with `set_weight`, a weights file, or `#[weights = ...]`",
        ));
    }
    let forward_call = errors.ok(recurrent_call(b, "layer")).flatten();
    let backward_call = errors.ok(recurrent_call(b, "backward_layer")).flatten();
    let forward = forward_call
        .as_ref()
        .and_then(|call| errors.ok(build_inner(call, input)));
    let custom_backward = backward_call.is_some();
    let backward = match (&backward_call, &forward_call) {
        (Some(call), _) | (None, Some(call)) => errors.ok(build_inner(call, input)),
        (None, None) => None,
    };
    errors.into_result()?;
    let (Some(merge), Some(forward), Some(mut backward)) = (merge, forward, backward) else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `Bidirectional` arguments",
        ));
    };
    match &backward_call {
        None if forward.go_backwards => {
            return Err(Error::new_spanned(
                forward_call.as_ref().map_or(&b.call.call, |c| &c.call),
                "the layer of `Bidirectional` has `go_backwards = True`, so its backward copy would read the sequence the same way; Keras refuses this\n  help: remove `go_backwards`, or give a `backward_layer` with `go_backwards = False`",
            ))
        }
        None => {
            backward.go_backwards = true;
            // Keras's copy draws its dropout masks from a seed generator of its own.
            backward.dropout_seed = backward.dropout_seed.wrapping_add(1);
        }
        Some(call) => {
            let mismatch = if backward.cell != forward.cell {
                Some("the same class")
            } else if backward.units != forward.units {
                Some("the same `units`")
            } else if backward.return_sequences != forward.return_sequences {
                Some("the same `return_sequences`")
            } else if backward.go_backwards == forward.go_backwards {
                Some("the opposite `go_backwards`")
            } else {
                None
            };
            if let Some(what) = mismatch {
                return Err(Error::new_spanned(
                    &call.call,
                    format!("`backward_layer` of `Bidirectional` must have {what} as its `layer`"),
                ));
            }
        }
    }
    Ok(Box::new(Bidirectional {
        forward,
        backward,
        merge,
        custom_backward,
        scopes: [String::new(), String::new()],
    }))
}

impl Bidirectional {
    fn inner(&self, backward: bool) -> &Recurrent {
        if backward {
            &self.backward
        } else {
            &self.forward
        }
    }

    /// Output steps per sample (`timesteps` with `return_sequences`, else 1) and units of
    /// one direction.
    fn steps_units(&self) -> (usize, usize) {
        let steps = if self.forward.return_sequences {
            self.forward.timesteps
        } else {
            1
        };
        (steps, self.forward.units)
    }

    fn merge_tokens(&self) -> TokenStream {
        match self.merge {
            Merge::Concat => quote!(::kiln::__private::layers::Merge::Concat),
            Merge::Sum => quote!(::kiln::__private::layers::Merge::Sum),
            Merge::Mul => quote!(::kiln::__private::layers::Merge::Mul),
            Merge::Ave => quote!(::kiln::__private::layers::Merge::Ave),
        }
    }

    fn forward_weights(&self) -> usize {
        self.forward.weights().len()
    }

    /// Zeroes the masked steps of each direction's sequence output (or its gradient), when
    /// a mask arrives and the layer returns sequences.
    fn zero_masked(
        &self,
        mask: Option<&TokenStream>,
        yf: TokenStream,
        yb: TokenStream,
    ) -> TokenStream {
        let Some(mask) = mask.filter(|_| self.forward.return_sequences) else {
            return quote!();
        };
        let (t, u) = (self.forward.timesteps, self.forward.units);
        let (gf, gb) = (self.forward.go_backwards, self.backward.go_backwards);
        quote!(
            ::kiln::__private::layers::bidirectional::zero_masked(#yf, &#mask[..], #t, #u, #gf);
            ::kiln::__private::layers::bidirectional::zero_masked(#yb, &#mask[..], #t, #u, #gb);
        )
    }

    fn sub_forward(f: &Forward, field: &str) -> Forward {
        let (state, field) = (&f.state, quote::format_ident!("{}", field));
        Forward {
            mode: f.mode,
            state: quote!(#state.#field),
            mask: f.mask.clone(),
        }
    }
}

impl Layer for Bidirectional {
    fn output_shape(&self) -> Shape {
        let inner = self.forward.output_shape();
        match self.merge {
            Merge::Concat => inner.with_last(2 * self.forward.units),
            _ => inner,
        }
    }

    fn weights(&self) -> Vec<Weight> {
        let mut weights = Vec::new();
        for (layer, scope) in [
            (&self.forward, &self.scopes[0]),
            (&self.backward, &self.scopes[1]),
        ] {
            weights.extend(layer.weights().into_iter().map(|mut w| {
                w.scope = scope.clone();
                w
            }));
        }
        weights
    }

    fn mask_rule(&self) -> MaskRule {
        self.forward.mask_rule()
    }

    fn name_nested(&mut self, names: &[String]) {
        let layer = names.first().map_or("", String::as_str);
        let base = layer.strip_prefix("forward_").unwrap_or(layer);
        self.scopes[0] = format!("forward_{base}/");
        self.scopes[1] = match names.get(1).filter(|_| self.custom_backward) {
            Some(name) => format!("{name}/"),
            None => format!(
                "backward_{}/",
                layer.strip_prefix("backward_").unwrap_or(layer)
            ),
        };
    }

    fn state_type(&self) -> Option<TokenStream> {
        let inner = self.forward.state_type()?;
        Some(quote!(::kiln::__private::layers::Bidirectional<#inner>))
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let nf = self.forward_weights();
        let f = self.forward.init(seed, first_weight);
        let b = self.backward.init(seed, first_weight + nf);
        let merge = self.merge_tokens();
        quote!(::kiln::__private::layers::Bidirectional::new(#f, #b, #merge, #nf))
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let nf = self.forward_weights().min(weights.len());
        let (fw, bw) = weights.split_at(nf);
        let (f, b) = (self.forward.baked(fw), self.backward.baked(bw));
        let merge = self.merge_tokens();
        quote!(::kiln::__private::layers::Bidirectional::new(#f, #b, #merge, #nf))
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let fwd = self.forward.forward(&Self::sub_forward(f, "forward"));
        let bwd = self.backward.forward(&Self::sub_forward(f, "backward"));
        let (steps, units) = self.steps_units();
        let out = self.output_shape();
        let (rows, cols) = (out.last(), out.positions());
        let in_ty = Shape(vec![self.forward.timesteps, self.forward.features]).tensor_type(f.mode);
        let zero = self.zero_masked(
            f.mask.as_ref(),
            quote!(::kiln::__private::Tensor::values_mut(&mut yf)),
            quote!(::kiln::__private::Tensor::values_mut(&mut yb)),
        );
        let per = steps * units;
        quote!({
            #[allow(unused_mut)]
            let mut yf = #fwd;
            #[allow(unused_mut)]
            let mut yb = #bwd;
            #zero
            let mut y = <#in_ty as ::kiln::__private::Tensor>::zeros_shaped::<#rows, #cols>(
                ::kiln::__private::Tensor::values(&yf).len() / #per.max(1),
            );
            #state.merge(
                ::kiln::__private::Tensor::values(&yf),
                ::kiln::__private::Tensor::values(&yb),
                ::kiln::__private::Tensor::values_mut(&mut y),
                #steps,
                #units,
            );
            y
        })
    }

    /// No streaming form: the backward layer starts from the sequence's end.
    fn step_refusal(&self) -> Option<String> {
        Some("`Bidirectional` runs its backward layer from the sequence's end, so its output at a timestep needs the timesteps after it\n  help: use the forward layer alone (`LSTM(..., return_sequences = True)`), or give the input a fixed number of timesteps".to_string())
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        let state = &f.state;
        let code = |backward: bool, field: &str| match self
            .inner(backward)
            .forward_slices(&Self::sub_forward(f, field))
        {
            Some(SliceForward::Map(code)) => Some(code),
            _ => None,
        };
        let (fwd, bwd) = (code(false, "forward")?, code(true, "backward")?);
        let (steps, units) = self.steps_units();
        let per = steps * units;
        let zero = self.zero_masked(f.mask.as_ref(), quote!(&mut yf[..]), quote!(&mut yb[..]));
        Some(SliceForward::Map(quote!({
            let mut yf = [0.0f32; #per];
            let mut yb = [0.0f32; #per];
            {
                let y: &mut [f32] = &mut yf[..];
                #fwd
            }
            {
                let y: &mut [f32] = &mut yb[..];
                #bwd
            }
            #zero
            #state.merge(&yf, &yb, y, #steps, #units);
        })))
    }

    fn borrows_training_input(&self) -> bool {
        true
    }

    fn forward_train(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let fwd = self.forward.forward_train(&Self::sub_forward(f, "forward"));
        let bwd = self
            .backward
            .forward_train(&Self::sub_forward(f, "backward"));
        let (steps, units) = self.steps_units();
        let out = self.output_shape();
        let (rows, cols) = (out.last(), out.positions());
        let t = self.forward.timesteps;
        let zero = self.zero_masked(
            f.mask.as_ref(),
            quote!(yf.as_mut_slice()),
            quote!(yb.as_mut_slice()),
        );
        quote!({
            let n = x.ncols() / #t.max(1);
            #[allow(unused_mut)]
            let (mut yf, cache_f) = #fwd;
            #[allow(unused_mut)]
            let (mut yb, cache_b) = #bwd;
            #zero
            let mut y = pass.pool.take_to_overwrite::<#rows>(n * #cols);
            #state.merge(yf.as_slice(), yb.as_slice(), y.as_mut_slice(), #steps, #units);
            (y, (cache_f, cache_b, yf, yb))
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        let state = &b.state;
        let nf = self.forward_weights();
        let sub = |field: &str, first_weight: usize| {
            let field = quote::format_ident!("{}", field);
            Backward {
                state: quote!(#state.#field),
                mask: b.mask.clone(),
                first_weight,
                need_input_grad: b.need_input_grad,
                last: false,
            }
        };
        let fwd = self.forward.backward(&sub("forward", b.first_weight))?;
        let bwd = self
            .backward
            .backward(&sub("backward", b.first_weight + nf))?;
        let (steps, units) = self.steps_units();
        let t = self.forward.timesteps;
        let zero = self.zero_masked(
            b.mask.as_ref(),
            quote!(dyf.as_mut_slice()),
            quote!(dyb.as_mut_slice()),
        );
        let result = if b.need_input_grad {
            quote!({
                let mut dx = dx_f;
                for (a, b) in dx.as_mut_slice().iter_mut().zip(dx_b.as_slice()) {
                    *a += b;
                }
                pass.pool.give(dx_b);
                dx
            })
        } else {
            quote!({
                let ((), ()) = (dx_f, dx_b);
            })
        };
        Some(quote!({
            let (cache_f, cache_b, yf, yb) = cache;
            let n = x.ncols() / #t.max(1);
            #[allow(unused_mut)]
            let mut dyf = pass.pool.take_to_overwrite::<#units>(n * #steps);
            #[allow(unused_mut)]
            let mut dyb = pass.pool.take_to_overwrite::<#units>(n * #steps);
            #state.merge_backward(
                ::kiln::__private::Tensor::values(&dy),
                yf.as_slice(),
                yb.as_slice(),
                dyf.as_mut_slice(),
                dyb.as_mut_slice(),
                #steps,
                #units,
            );
            pass.pool.give(dy);
            pass.pool.give(yf);
            pass.pool.give(yb);
            #zero
            let dx_f = {
                let cache = cache_f;
                let dy = dyf;
                #fwd
            };
            let dx_b = {
                let cache = cache_b;
                let dy = dyb;
                #bwd
            };
            #result
        }))
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
    fn merge_modes_set_the_last_axis() {
        let concat = shape(quote!(M = Sequential([Bidirectional(LSTM(4))])), &[5, 3]);
        assert_eq!(concat, Ok(Shape(vec![8])));
        let sum = shape(
            quote!(
                M = Sequential([Bidirectional(
                    GRU(3, return_sequences = True),
                    merge_mode = "sum"
                )])
            ),
            &[5, 3],
        );
        assert_eq!(sum, Ok(Shape(vec![5, 3])));
    }

    #[test]
    fn refuses_what_keras_refuses() {
        let cases: &[(TokenStream, &str)] = &[
            (quote!(M = Sequential([Bidirectional(Dense(4))])), "`Bidirectional` wraps a recurrent layer (`SimpleRNN`, `LSTM` or `GRU`), but its `layer` is `Dense`"),
            (quote!(M = Sequential([Bidirectional(Lstm(4))])), "unknown layer `Lstm`; did you mean `LSTM`?"),
            (quote!(M = Sequential([Bidirectional(4)])), "expected a layer call like `LSTM(32)` for `layer` of `Bidirectional`, found the integer `4`"),
            (quote!(M = Sequential([Bidirectional(LSTM(4), merge_mode = "avg")])), "unknown `merge_mode` \"avg\" of `Bidirectional`; did you mean `\"ave\"`?"),
            (quote!(M = Sequential([Bidirectional(LSTM(4), merge_mode = None)])), "returns the two directions as two outputs"),
            (quote!(M = Sequential([Bidirectional(LSTM(4, go_backwards = True))])), "has `go_backwards = True`"),
            (quote!(M = Sequential([Bidirectional(LSTM(4), backward_layer = LSTM(3, go_backwards = True))])), "must have the same `units`"),
            (quote!(M = Sequential([Bidirectional(LSTM(4), backward_layer = GRU(4, go_backwards = True))])), "must have the same class"),
        ];
        for (tokens, expected) in cases {
            let e = shape(tokens.clone(), &[5, 3]).err().unwrap_or_default();
            assert!(e.contains(expected), "{expected} not in {e}");
        }
        let e = shape(quote!(M = Sequential([Bidirectional(LSTM(4))])), &[5])
            .err()
            .unwrap_or_default();
        assert!(e.contains("`LSTM` expects a rank-2 input"), "{e}");
    }

    #[test]
    fn weights_are_scoped_by_the_nested_names() {
        let inv: crate::ast::Invocation = syn::parse_quote!(
            M = Sequential([Bidirectional(
                GRU(2),
                backward_layer = GRU(2, go_backwards = True)
            )])
        );
        let b = bind(&inv.models[0].layers[0], &KIND.signature).unwrap_or_else(|e| panic!("{e}"));
        let input = Shape(vec![4, 3]);
        let input = LayerInput {
            shape: &input,
            source: "the model input",
        };
        let mut layer = build(&b, &input).unwrap_or_else(|e| panic!("{e}"));
        layer.name_nested(&["gru".into(), "gru_1".into()]);
        let names: Vec<String> = layer.weights().iter().map(Weight::path).collect();
        assert_eq!(names[0], "forward_gru/gru_cell/kernel");
        assert_eq!(names[5], "gru_1/gru_cell/bias");
    }
}
