//! What `SimpleRNN`, `LSTM` and `GRU` share: their common Keras arguments, the shape and
//! mask rules, and the code generation around the runtime kernels
//! (`kiln_runtime::layers::{SimpleRnn, Lstm, Gru}`, whose recurrence is
//! `kiln_runtime::layers::recurrent::Sequence`). Each layer's file holds its signature and
//! what only it has (LSTM's `unit_forget_bias`, GRU's `reset_after`).
//!
//! Shape rule: `(timesteps, features)` -> `(units,)`, or `(timesteps, units)` with
//! `return_sequences = True`. Any other rank is a compile error.
//!
//! Masks (Keras 3, `layers/rnn/rnn.py` and `backend/jax/rnn.py`): the layer uses an incoming
//! mask — a masked timestep leaves the state as it was and outputs the previous output, so a
//! sequence masked everywhere gives zeros — and passes it on, unchanged, only with
//! `return_sequences` (`compute_mask` returns the input mask then, `None` otherwise).
//! With `go_backwards` the timesteps run last to first and the sequence output is in that
//! processing order, as Keras returns it.
//!
//! `return_state = True` and `stateful = True` are refused (kiln models have one output and
//! no state between calls); `unroll` is accepted and changes nothing (the same numbers).
//! `dropout` and `recurrent_dropout` act in training only (Keras: one mask per sequence,
//! shared by every timestep); kiln does not implement them in training yet, so a layer with
//! either above 0 has no backward pass and its model cannot be compiled for training.

use super::{Backward, Forward, Layer, LayerInput, MaskRule, SliceForward, Weight};
use crate::activations::{self, Resolved};
use crate::args::{Bound, Errors};
use crate::ast::{Arg, Value};
use crate::shape::{Mode, Shape};
use crate::{constraints, initializers, regularizers};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

/// The three recurrent kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    SimpleRnn,
    Lstm,
    /// With `reset_after`.
    Gru(bool),
}

impl Cell {
    /// Gates per unit: the width of `kernel` is `gates * units`.
    fn gates(self) -> usize {
        match self {
            Cell::SimpleRnn => 1,
            Cell::Lstm => 4,
            Cell::Gru(_) => 3,
        }
    }

    /// Keras's cell name, the middle of every weight path (`lstm/lstm_cell/kernel`).
    fn weight_names(self) -> [&'static str; 3] {
        match self {
            Cell::SimpleRnn => [
                "simple_rnn_cell/kernel",
                "simple_rnn_cell/recurrent_kernel",
                "simple_rnn_cell/bias",
            ],
            Cell::Lstm => [
                "lstm_cell/kernel",
                "lstm_cell/recurrent_kernel",
                "lstm_cell/bias",
            ],
            Cell::Gru(_) => [
                "gru_cell/kernel",
                "gru_cell/recurrent_kernel",
                "gru_cell/bias",
            ],
        }
    }

    /// The runtime's `work_len(precompute)` (`Sequence::work_len`): projections, state and
    /// a step's scratch; the runtime's tests pin the same formula.
    fn work_len(self, units: usize, timesteps: usize, precompute: bool) -> usize {
        let g = self.gates() * units;
        let projections = if precompute { timesteps * g } else { g };
        let (state, step) = match self {
            Cell::SimpleRnn => (units, units),
            Cell::Lstm => (2 * units, 10 * units),
            Cell::Gru(_) => (units, 10 * units),
        };
        projections + state + step
    }
}

/// A checked recurrent layer.
pub struct Recurrent {
    pub cell: Cell,
    pub units: usize,
    pub timesteps: usize,
    pub features: usize,
    pub activation: Resolved,
    pub recurrent_activation: Resolved,
    pub use_bias: bool,
    pub unit_forget_bias: bool,
    /// Kernel, recurrent kernel and bias initializers.
    pub initializers: [TokenStream; 3],
    pub regularizers: [Option<TokenStream>; 3],
    pub activity_regularizer: Option<TokenStream>,
    pub constraints: [Option<TokenStream>; 3],
    pub dropout: f32,
    pub recurrent_dropout: f32,
    pub return_sequences: bool,
    pub go_backwards: bool,
}

/// Keras's default for a string-valued argument, as an `Arg`.
fn default_arg(value: &str) -> Arg {
    Arg {
        keyword: None,
        value: Value::Str(value.into()),
        expr: syn::parse_quote!(#value),
    }
}

/// A rate in `[0, 1]` (Keras clamps; kiln refuses what Keras would silently change).
fn rate(b: &Bound, name: &str) -> Result<f32, Error> {
    let value = b.float(name, 0.0)?;
    if (0.0..1.0).contains(&value) {
        return Ok(value as f32);
    }
    let shown = match b.get(name).map(|a| &a.value) {
        Some(Value::Int(i)) => i.to_string(),
        _ => format!("{value:?}"),
    };
    let message = format!(
        "`{name}` of `{}` must be at least 0 and below 1, found `{shown}`",
        b.class()
    );
    Err(match b.get(name) {
        Some(arg) => Error::new_spanned(&arg.expr, message),
        None => Error::new_spanned(&b.call.call, message),
    })
}

/// `name = False` or absent; `True` is refused with `why`.
fn refuse_true(b: &Bound, name: &str, why: &str) -> Result<(), Error> {
    if b.boolean(name, false)? {
        let message = format!(
            "`{name} = True` of `{}` is not supported yet: {why}",
            b.class()
        );
        return Err(match b.get(name) {
            Some(arg) => Error::new_spanned(&arg.expr, message),
            None => Error::new_spanned(&b.call.call, message),
        });
    }
    Ok(())
}

/// Reads the arguments of a recurrent layer and checks its input.
pub fn build(b: &Bound, input: &LayerInput, cell: Cell) -> Result<Box<dyn Layer>, Error> {
    let class = b.class();
    let mut errors = Errors::default();
    let units = errors.ok(b.positive("units"));
    let activation = |name: &str, default: &str| match b.get(name) {
        Some(arg) => activations::resolve(arg),
        None => activations::resolve(&default_arg(default)),
    };
    let act = errors.ok(activation("activation", "tanh"));
    let recurrent_act = if cell == Cell::SimpleRnn {
        Some(Resolved::linear())
    } else {
        errors.ok(activation("recurrent_activation", "sigmoid"))
    };
    let use_bias = errors.ok(b.boolean("use_bias", true));
    let unit_forget_bias = errors.ok(b.boolean("unit_forget_bias", true));
    let init = |name: &str, default: &str| match b.get(name) {
        Some(arg) => initializers::resolve(arg),
        None => initializers::resolve(&default_arg(default)),
    };
    let inits = [
        errors.ok(init("kernel_initializer", "glorot_uniform")),
        errors.ok(init("recurrent_initializer", "orthogonal")),
        errors.ok(init("bias_initializer", "zeros")),
    ];
    let mut regularizer = |name: &str| {
        b.get(name)
            .and_then(|arg| errors.ok(regularizers::resolve(arg)))
            .flatten()
    };
    let regs = [
        regularizer("kernel_regularizer"),
        regularizer("recurrent_regularizer"),
        regularizer("bias_regularizer"),
    ];
    let activity_regularizer = regularizer("activity_regularizer");
    let bias_rank = if cell == Cell::Gru(true) { 2 } else { 1 };
    let mut constraint = |name: &str, rank: usize| {
        b.get(name)
            .and_then(|arg| errors.ok(constraints::resolve(arg, rank)))
            .flatten()
    };
    let cons = [
        constraint("kernel_constraint", 2),
        constraint("recurrent_constraint", 2),
        constraint("bias_constraint", bias_rank),
    ];
    let dropout = errors.ok(rate(b, "dropout"));
    let recurrent_dropout = errors.ok(rate(b, "recurrent_dropout"));
    let return_sequences = errors.ok(b.boolean("return_sequences", false));
    let go_backwards = errors.ok(b.boolean("go_backwards", false));
    errors.ok(b.boolean("unroll", false));
    errors.ok(refuse_true(
        b,
        "return_state",
        "kiln models have a single output; use `return_sequences` for every step's output",
    ));
    errors.ok(refuse_true(
        b,
        "stateful",
        "kiln keeps no state between calls, every sequence starts from zeros",
    ));
    if let Some(arg) = b.get("seed") {
        if !matches!(arg.value, Value::None | Value::Int(0..)) {
            errors.push(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected `None` or a non-negative integer for `seed` of `{class}`, found {}",
                    arg.value.describe()
                ),
            ));
        }
    }
    if let Some(arg) = b.get("use_cudnn") {
        if !matches!(arg.value, Value::Bool(_) | Value::Str(_)) {
            errors.push(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected `\"auto\"`, `True` or `False` for `use_cudnn` of `{class}`, found {}",
                    arg.value.describe()
                ),
            ));
        }
    }
    let sequence = match input.shape.0.as_slice() {
        [t, f] => Some((*t, *f)),
        dims => {
            let help = match dims {
                [n] => format!(
                    "\n  help: to read it as {n} timesteps of one feature, put `Reshape(({n}, 1))` before `{class}`; after another recurrent layer, give that one `return_sequences = True`"
                ),
                _ => String::new(),
            };
            errors.push(Error::new(
                b.call.class.span(),
                format!(
                    "`{class}` expects a rank-2 input `(timesteps, features)`, but {} has rank {}{help}",
                    input.phrase(),
                    dims.len()
                ),
            ));
            None
        }
    };
    errors.into_result()?;
    let (
        Some(units),
        Some(activation),
        Some(recurrent_activation),
        Some(use_bias),
        Some(unit_forget_bias),
        [Some(k_init), Some(r_init), Some(b_init)],
        Some(dropout),
        Some(recurrent_dropout),
        Some(return_sequences),
        Some(go_backwards),
        Some((timesteps, features)),
    ) = (
        units,
        act,
        recurrent_act,
        use_bias,
        unit_forget_bias,
        inits,
        dropout,
        recurrent_dropout,
        return_sequences,
        go_backwards,
        sequence,
    )
    else {
        return Err(Error::new_spanned(
            &b.call.call,
            format!("invalid `{class}` arguments"),
        ));
    };
    Ok(Box::new(Recurrent {
        cell,
        units,
        timesteps,
        features,
        activation,
        recurrent_activation,
        use_bias,
        unit_forget_bias,
        initializers: [k_init, r_init, b_init],
        regularizers: regs,
        activity_regularizer,
        constraints: cons,
        dropout,
        recurrent_dropout,
        return_sequences,
        go_backwards,
    }))
}

impl Recurrent {
    fn sequence(&self) -> TokenStream {
        let (t, f, rs, gb) = (
            self.timesteps,
            self.features,
            self.return_sequences,
            self.go_backwards,
        );
        quote!(::kiln::__private::layers::Sequence {
            timesteps: #t,
            features: #f,
            return_sequences: #rs,
            go_backwards: #gb,
        })
    }

    fn ty(&self) -> TokenStream {
        match self.cell {
            Cell::SimpleRnn => quote!(::kiln::__private::layers::SimpleRnn),
            Cell::Lstm => quote!(::kiln::__private::layers::Lstm),
            Cell::Gru(_) => quote!(::kiln::__private::layers::Gru),
        }
    }

    fn out_cols(&self) -> usize {
        if self.return_sequences {
            self.timesteps
        } else {
            1
        }
    }

    fn mask_arg(mask: Option<&TokenStream>) -> TokenStream {
        match mask {
            Some(m) => quote!(::core::option::Option::Some(&#m[..])),
            None => quote!(::core::option::Option::None),
        }
    }

    /// `predict`'s and `predict_into`'s scratch on the stack: the projections of a whole
    /// sequence when they are small, one timestep's otherwise.
    fn stack_work_len(&self) -> usize {
        const PRECOMPUTE_LIMIT: usize = 16 * 1024;
        let whole = self.cell.work_len(self.units, self.timesteps, true);
        if whole <= PRECOMPUTE_LIMIT {
            whole
        } else {
            self.cell.work_len(self.units, self.timesteps, false)
        }
    }

    fn activity_loss(&self) -> TokenStream {
        crate::regularizers::activity_loss(&self.activity_regularizer, self.units * self.out_cols())
    }
}

impl Layer for Recurrent {
    fn output_shape(&self) -> Shape {
        if self.return_sequences {
            Shape(vec![self.timesteps, self.units])
        } else {
            Shape(vec![self.units])
        }
    }

    fn weights(&self) -> Vec<Weight> {
        let g = self.cell.gates() * self.units;
        let names = self.cell.weight_names();
        let bias_shape = match self.cell {
            Cell::Gru(true) => Shape(vec![2, g]),
            _ => Shape(vec![g]),
        };
        let shapes = [
            Shape(vec![self.features, g]),
            Shape(vec![self.units, g]),
            bias_shape,
        ];
        let count = if self.use_bias { 3 } else { 2 };
        (0..count)
            .filter_map(|i| {
                let mut w = Weight::new(names.get(i).copied()?, shapes.get(i)?.clone());
                w.regularizer = self.regularizers.get(i)?.clone();
                w.constraint = self.constraints.get(i)?.clone();
                Some(w)
            })
            .collect()
    }

    fn mask_rule(&self) -> MaskRule {
        if self.return_sequences {
            MaskRule::Propagate
        } else {
            MaskRule::Consume
        }
    }

    fn state_type(&self) -> Option<TokenStream> {
        Some(self.ty())
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let ty = self.ty();
        let (seq, units, use_bias) = (self.sequence(), self.units, self.use_bias);
        let (act, rec) = (&self.activation.tokens, &self.recurrent_activation.tokens);
        let [k, r, b] = &self.initializers;
        let inits = quote!([#k, #r, #b]);
        match self.cell {
            Cell::SimpleRnn => {
                quote!(#ty::new(#seq, #units, #act, #use_bias, #inits, #seed, #first_weight))
            }
            Cell::Lstm => {
                let ufb = self.unit_forget_bias;
                quote!(#ty::new(#seq, #units, #act, #rec, #use_bias, #ufb, #inits, #seed, #first_weight))
            }
            Cell::Gru(reset_after) => {
                quote!(#ty::new(#seq, #units, #act, #rec, #use_bias, #reset_after, #inits, #seed, #first_weight))
            }
        }
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let ty = self.ty();
        let (seq, units) = (self.sequence(), self.units);
        let (act, rec) = (&self.activation.tokens, &self.recurrent_activation.tokens);
        let (kernel, recurrent) = (&weights[0], &weights[1]);
        let bias = match weights.get(2) {
            Some(bias) => quote!(::core::option::Option::Some(#bias)),
            None => quote!(::core::option::Option::None),
        };
        match self.cell {
            Cell::SimpleRnn => quote!(#ty::baked(#seq, #units, #act, #kernel, #recurrent, #bias)),
            Cell::Lstm => quote!(#ty::baked(#seq, #units, #act, #rec, #kernel, #recurrent, #bias)),
            Cell::Gru(reset_after) => {
                quote!(#ty::baked(#seq, #units, #act, #rec, #reset_after, #kernel, #recurrent, #bias))
            }
        }
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let in_ty = Shape(vec![self.timesteps, self.features]).tensor_type(f.mode);
        let (rows, cols) = (self.units, self.out_cols());
        let in_len = self.timesteps * self.features;
        let mask = Self::mask_arg(f.mask.as_ref());
        let (work, activity) = match f.mode {
            Mode::Sample => {
                let len = self.stack_work_len();
                (quote!([0.0f32; #len]), quote!())
            }
            Mode::Batch => {
                let len = self.cell.work_len(self.units, self.timesteps, true);
                (
                    quote!(::core::iter::repeat_n(0.0f32, #len).collect::<::kiln::__private::Vec<f32>>()),
                    self.activity_loss(),
                )
            }
        };
        quote!({
            let mut y = <#in_ty as ::kiln::__private::Tensor>::zeros_shaped::<#rows, #cols>(
                ::kiln::__private::Tensor::values(&x).len() / #in_len.max(1),
            );
            let mut work = #work;
            #state.forward(
                ::kiln::__private::Tensor::values(&x),
                #mask,
                ::kiln::__private::Tensor::values_mut(&mut y),
                &mut work,
            );
            #activity
            y
        })
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        let state = &f.state;
        let mask = Self::mask_arg(f.mask.as_ref());
        let len = self.stack_work_len();
        Some(SliceForward::Map(quote!({
            let mut work = [0.0f32; #len];
            #state.forward(x, #mask, y, &mut work);
        })))
    }

    fn borrows_training_input(&self) -> bool {
        true
    }

    fn forward_train(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let (rows, cols) = (self.units, self.out_cols());
        let mask = Self::mask_arg(f.mask.as_ref());
        let activity = self.activity_loss();
        let t = self.timesteps;
        quote!({
            let n = x.ncols() / #t.max(1);
            let mut y = pass.pool.take_to_overwrite::<#rows>(n * #cols);
            let mut cache = pass.pool.take_vec_to_overwrite(n * #state.cache_len());
            let mut work = pass.pool.take_vec_to_overwrite(#state.work_len(true));
            #state.forward_train(x.as_slice(), #mask, y.as_mut_slice(), &mut work, &mut cache);
            pass.pool.give_vec(work);
            #activity
            (y, cache)
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        if self.dropout > 0.0 || self.recurrent_dropout > 0.0 {
            return None;
        }
        let state = &b.state;
        let mask = Self::mask_arg(b.mask.as_ref());
        let (k, count) = (b.first_weight, if self.use_bias { 3usize } else { 2 });
        let (t, f) = (self.timesteps, self.features);
        let g = self.cell.gates() * self.units;
        let activity = match &self.activity_regularizer {
            Some(reg) => {
                let per_sample = self.units * self.out_cols();
                quote!(::kiln::__private::add_activity_gradient(&#reg, ::kiln::__private::Tensor::values(y), ::kiln::__private::Tensor::values_mut(&mut dy), #per_sample);)
            }
            None => quote!(),
        };
        let (dx_decl, dx_arg, result) = if b.need_input_grad {
            (
                quote!(let mut dx = pass.pool.take_to_overwrite::<#f>(n * #t);),
                quote!(::core::option::Option::Some(dx.as_mut_slice())),
                quote!(dx),
            )
        } else {
            (quote!(), quote!(::core::option::Option::None), quote!(()))
        };
        Some(quote!({
            let mut dy = dy;
            #activity
            let n = x.ncols() / #t.max(1);
            let mut dp = pass.pool.take_vec_to_overwrite(n * #t * #g);
            let mut work = pass.pool.take_vec_to_overwrite(#state.work_len(false));
            #dx_decl
            #state.backward(
                x.as_slice(),
                #mask,
                &cache,
                dy.as_slice(),
                &mut dp,
                &mut work,
                &mut grads.all_mut()[#k..#k + #count],
                #dx_arg,
            );
            pass.pool.give_vec(dp);
            pass.pool.give_vec(work);
            pass.pool.give_vec(cache);
            pass.pool.give(dy);
            #result
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;
    use crate::layers::{gru, lstm, simple_rnn, LayerKind};

    fn build_with(
        kind: &LayerKind,
        inv: Invocation,
        input: &[usize],
    ) -> Result<Box<dyn Layer>, String> {
        let b = bind(&inv.models[0].layers[0], &kind.signature).map_err(|e| e.to_string())?;
        let shape = Shape(input.to_vec());
        let input = LayerInput {
            shape: &shape,
            source: "layer `dense`",
        };
        (kind.build)(&b, &input).map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
    }

    #[test]
    fn shapes_weights_and_mask_rules_follow_keras() {
        let l = build_with(
            &lstm::KIND,
            syn::parse_quote!(M = Sequential([LSTM(4)])),
            &[7, 3],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.output_shape(), Shape(vec![4]));
        assert_eq!(l.mask_rule(), MaskRule::Consume);
        let w: Vec<(&str, Shape)> = l
            .weights()
            .into_iter()
            .map(|w| (w.suffix, w.shape))
            .collect();
        assert_eq!(
            w,
            [
                ("lstm_cell/kernel", Shape(vec![3, 16])),
                ("lstm_cell/recurrent_kernel", Shape(vec![4, 16])),
                ("lstm_cell/bias", Shape(vec![16])),
            ]
        );
        let g = build_with(
            &gru::KIND,
            syn::parse_quote!(M = Sequential([GRU(2, return_sequences = True)])),
            &[5, 3],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.output_shape(), Shape(vec![5, 2]));
        assert_eq!(g.mask_rule(), MaskRule::Propagate);
        assert_eq!(g.weights()[2].shape, Shape(vec![2, 6]));
        let g = build_with(
            &gru::KIND,
            syn::parse_quote!(M = Sequential([GRU(2, reset_after = False, use_bias = False)])),
            &[5, 3],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.weights().len(), 2);
        let r = build_with(
            &simple_rnn::KIND,
            syn::parse_quote!(M = Sequential([SimpleRNN(3, unroll = True)])),
            &[5, 3],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.weights()[0].suffix, "simple_rnn_cell/kernel");
    }

    #[test]
    fn refused_arguments_and_ranks_are_reported_together() {
        let e = build_with(
            &lstm::KIND,
            syn::parse_quote!(
                M = Sequential([LSTM(
                    0,
                    stateful = True,
                    return_state = True,
                    dropout = 1.0,
                    recurrent_activation = "sigmoyd"
                )])
            ),
            &[8],
        )
        .err()
        .unwrap_or_default();
        for part in [
            "`units` of `LSTM` must be",
            "`stateful = True` of `LSTM` is not supported yet",
            "`return_state = True` of `LSTM` is not supported yet",
            "`dropout` of `LSTM` must be at least 0 and below 1, found `1.0`",
            "unknown activation `sigmoyd`",
            "`LSTM` expects a rank-2 input `(timesteps, features)`, but its input (8,) from layer `dense` has rank 1",
        ] {
            assert!(e.contains(part), "{part} not in {e}");
        }
    }
}
