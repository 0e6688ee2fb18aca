//! What `SimpleRNN`, `LSTM` and `GRU` share: their common Keras arguments, the shape and
//! mask rules, and the code generation around the runtime kernels
//! (`kiln_runtime::layers::{SimpleRnn, Lstm, Gru}`: each is `recurrent::Rnn` around its
//! cell, so the code below calls the same inherent `forward`, `forward_train` and
//! `backward` on all three, with no trait to import). Each layer's file holds its signature
//! and what only it has (LSTM's `unit_forget_bias`, GRU's `reset_after`).
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
//! `return_state = True` is refused (kiln models have one output); `unroll` is accepted and
//! changes nothing (the same numbers). `stateful = True` is Keras's: the state at the end of
//! one call is where the next starts, one state per sample of a batch whose size the model
//! input fixes (`Input(batch_shape = (B, ...))`). kiln models hold no mutable state (they
//! are `Sync` and `predict` is a pure function), so the caller holds it: a stateful model
//! gets `new_states()` and `predict_stateful(&mut states, xs)` (`expand.rs`), and its
//! `predict`, like Keras's on JAX, starts every call from zeros. `check.rs` requires the
//! fixed batch size and a model that runs one timestep at a time.
//!
//! Streaming (`Layer::step`): a layer without `go_backwards` runs one timestep at a time,
//! its state (`h`, LSTM's `c`) carried in the model's `StreamState`; a masked timestep keeps
//! it and repeats the previous output, so step-by-step outputs are the rows of the
//! `return_sequences` output. Without `return_sequences` the layer is `last_only`.
//! `dropout` and `recurrent_dropout` act in training only, as Keras 3 computes them
//! (`layers/rnn/dropout_rnn_cell.py`, `simple_rnn.py`, `lstm.py`, `gru.py`): every mask is
//! drawn once per sequence and shared by all its timesteps, each value 0 or
//! `1 / (1 - rate)`, drawn per training step like `Dropout`'s
//! (`kiln_runtime::layers::dropout::Dropout`) from the layer's `seed` (or its position).
//! - `dropout` alone (LSTM and GRU keep their default `implementation = 2`): one mask over
//!   the features scales every timestep's input (noise shape `(1, features)`).
//! - `recurrent_dropout > 0` makes LSTM and GRU switch to `implementation = 1`: one mask
//!   per gate (`i, f, c, o`; `z, r, h`) on the input (with `dropout`) and one per gate on
//!   `h` where it is projected (`h · recurrent_kernel`; for GRU without `reset_after`,
//!   `(r * h) · recurrent_kernel_h`), never on the LSTM carry, GRU's `z * h` or the state
//!   passed on. SimpleRNN has one mask on the input and one on `h`. The runtime folds each
//!   sample's masks into masked copies of the kernels, whose gradients go back through the
//!   masks (`kiln_runtime::layers::recurrent::GateDropout`).
//!
//! Keras draws its masks from its own random generator: kiln's follow the same rules but
//! cannot match Keras's draws bit for bit (tests compare against Keras's training step with
//! masks the oracle sets, `tools/oracle/recurrent_dropout.py`).

use super::{Backward, Forward, Layer, LayerInput, MaskRule, SliceForward, Weight};
use crate::activations::{self, Resolved};
use crate::args::{Bound, Errors};
use crate::ast::{Arg, Value};
use crate::shape::{Mode, Shape, MAX_ELEMENTS};
use crate::{constraints, initializers, regularizers};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
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

    /// The runtime's `state_len()`: values a streaming step carries (`h`, LSTM's `c`).
    fn state_len(self, units: usize) -> usize {
        match self {
            Cell::Lstm => 2 * units,
            Cell::SimpleRnn | Cell::Gru(_) => units,
        }
    }

    /// The runtime's `step_work_len()`: SimpleRNN's generic step (`recurrent::
    /// stream_work_len`: projection and pre-activation), LSTM's and GRU's in-place ones.
    fn step_len(self, units: usize) -> usize {
        match self {
            Cell::SimpleRnn => 2 * units,
            Cell::Lstm => 5 * units,
            Cell::Gru(_) => 7 * units,
        }
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
    /// The seed of the input dropout mask's stream: `seed`, or a hash of where the input
    /// comes from.
    pub dropout_seed: u64,
    pub return_sequences: bool,
    pub go_backwards: bool,
    /// `stateful = True`: where it is written.
    pub stateful: Option<Span>,
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
    Ok(Box::new(build_recurrent(b, input, cell)?))
}

/// [`build`] as the concrete layer, for wrappers (`Bidirectional`).
pub fn build_recurrent(b: &Bound, input: &LayerInput, cell: Cell) -> Result<Recurrent, Error> {
    let class = b.class();
    let mut errors = Errors::default();
    let units = errors.ok(b.positive("units"));
    // Weights are `gates * units` wide and outputs `timesteps * units`: bounded like every
    // other size, so that those products cannot overflow before the size checks.
    let units = units.filter(|&u| {
        let ok = u <= MAX_ELEMENTS;
        if !ok {
            errors.push(Error::new_spanned(
                b.get("units").map_or(&b.call.call, |a| &a.expr),
                format!("`units` of `{class}` must be at most {MAX_ELEMENTS}, found `{u}`"),
            ));
        }
        ok
    });
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
    // Keras 3: the state carries over between calls, one row per sample of a fixed batch
    // size; `check.rs` requires that batch size and a model that runs per timestep.
    let stateful = match errors.ok(b.boolean("stateful", false)) {
        Some(true) => b.get("stateful").map(|arg| arg.expr.span()),
        _ => None,
    };
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
    Ok(Recurrent {
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
        dropout_seed: match b.get("seed").map(|a| &a.value) {
            Some(Value::Int(seed)) => u64::try_from(*seed).unwrap_or_default(),
            _ => fnv1a(input.source),
        },
        return_sequences,
        go_backwards,
        stateful,
    })
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
    fn stateful(&self) -> Option<Span> {
        self.stateful
    }

    fn step_refusal(&self) -> Option<String> {
        self.go_backwards.then(|| {
            "`go_backwards = True` reads each sequence from its end, so its first output needs the whole sequence\n  help: reverse the timesteps yourself before feeding them, or give the input a fixed number of timesteps".to_string()
        })
    }

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

    /// Streaming: one timestep through the cell, the state carried in `state`; a masked
    /// timestep keeps it and repeats the previous output. Not with `go_backwards`, which
    /// starts from the sequence's end.
    fn step(&self, s: &super::Step) -> Option<super::StepCode> {
        if self.go_backwards {
            return None;
        }
        let (w, len) = (&s.weights, self.cell.step_len(self.units));
        let keep = s.mask.clone().unwrap_or_else(|| quote!(true));
        Some(super::StepCode {
            state_len: self.cell.state_len(self.units),
            scratch_len: len,
            code: SliceForward::Map(quote!({
                #w.step(x, #keep, state, &mut scratch[..#len], y);
            })),
            last_only: !self.return_sequences,
        })
    }

    /// `predict`'s scratch array (`stack_work_len` values; up to 64 KiB precomputed, or one
    /// timestep's for a large layer).
    fn work_stack_bytes(&self) -> usize {
        self.stack_work_len().saturating_mul(4)
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
        if self.recurrent_dropout > 0.0 {
            let (draw, view) = (self.gate_masks(), Self::gate_dropout_view());
            return quote!({
                let n = x.ncols() / #t.max(1);
                let masks = #draw;
                let mut y = pass.pool.take_to_overwrite::<#rows>(n * #cols);
                let mut cache = pass.pool.take_vec_to_overwrite(n * #state.cache_len());
                let mut work = pass
                    .pool
                    .take_vec_to_overwrite(#state.work_len(true) + #state.dropout_work_len());
                #state.forward_train_dropout(
                    x.as_slice(),
                    #mask,
                    #view,
                    y.as_mut_slice(),
                    &mut work,
                    &mut cache,
                );
                pass.pool.give_vec(work);
                #activity
                (y, (cache, masks))
            });
        }
        self.dropout_train(quote!({
            let n = x.ncols() / #t.max(1);
            let mut y = pass.pool.take_to_overwrite::<#rows>(n * #cols);
            let mut cache = pass.pool.take_vec_to_overwrite(n * #state.cache_len());
            let mut work = pass.pool.take_vec_to_overwrite(#state.work_len(true));
            #state.forward_train(x.as_slice(), #mask, y.as_mut_slice(), &mut work, &mut cache);
            pass.pool.give_vec(work);
            #activity
            (y, cache)
        }))
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
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
        // With `recurrent_dropout`, the cache carries the pass's masks (`forward_train`).
        let (unpack, work_len, (method, view), give_masks) = if self.recurrent_dropout > 0.0 {
            let view = Self::gate_dropout_view();
            (
                quote!(let (cache, masks) = cache;),
                quote!(#state.work_len(false) + #state.dropout_work_len()),
                (quote!(backward_dropout), quote!(#view,)),
                quote!(
                    if let ::core::option::Option::Some((input, recurrent)) = masks {
                        if let ::core::option::Option::Some(input) = input {
                            pass.pool.give_vec(input);
                        }
                        pass.pool.give_vec(recurrent);
                    }
                ),
            )
        } else {
            (
                quote!(),
                quote!(#state.work_len(false)),
                (quote!(backward), quote!()),
                quote!(),
            )
        };
        Some(quote!({
            #unpack
            let mut dy = dy;
            #activity
            let n = x.ncols() / #t.max(1);
            let mut dp = pass.pool.take_vec_to_overwrite(n * #t * #g);
            let mut work = pass.pool.take_vec_to_overwrite(#work_len);
            #dx_decl
            #state.#method(
                x.as_slice(),
                #mask,
                #view
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
            #give_masks
            #result
        }))
        .map(|code| self.dropout_backward(code, b.need_input_grad))
    }
}

/// FNV-1a, as `Dropout` seeds a layer without `seed` from its position.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Input `dropout` in training (see the module doc): the layer's code runs on a pooled copy
/// of `x` scaled by the mask, whose gradient is scaled by the same mask.
impl Recurrent {
    fn input_dropout(&self) -> Option<TokenStream> {
        // With `recurrent_dropout`, `dropout`'s masks are per gate: see `gate_masks`.
        if self.dropout <= 0.0 || self.recurrent_dropout > 0.0 {
            return None;
        }
        let (t, f, rate, seed) = (
            self.timesteps,
            self.features,
            self.dropout,
            self.dropout_seed,
        );
        Some(quote!(::kiln::__private::layers::dropout::Dropout {
            rate: #rate,
            shape: &[#t, #f],
            noise_shape: &[1, #f],
            per_sample: true,
            seed: #seed,
        }))
    }

    /// Wraps `forward_train`'s code: its cache becomes `(cache, dropped input, multipliers)`.
    fn dropout_train(&self, code: TokenStream) -> TokenStream {
        let Some(dropout) = self.input_dropout() else {
            return code;
        };
        let (t, f) = (self.timesteps, self.features);
        quote!({
            let mut dropped = pass.pool.take_to_overwrite::<#f>(x.ncols());
            dropped.as_mut_slice().copy_from_slice(x.as_slice());
            // `Dropout::train`'s draws, from buffers of the right sizes (best fit in the pool).
            let multipliers = if pass.training {
                let dropout = #dropout;
                let samples = x.ncols() / #t.max(1);
                let mut rng = dropout.rng(pass);
                let mut draws = pass.pool.take_vec_to_overwrite(samples * #f);
                let mut multipliers = pass.pool.take_vec_to_overwrite(samples * #t * #f);
                dropout.multipliers_into(samples, &mut rng, &mut draws, &mut multipliers);
                pass.pool.give_vec(draws);
                for (v, m) in dropped.as_mut_slice().iter_mut().zip(&multipliers) {
                    *v *= m;
                }
                ::core::option::Option::Some(multipliers)
            } else {
                ::core::option::Option::None
            };
            let (y, cache) = {
                let x = &dropped;
                #code
            };
            (y, (cache, dropped, multipliers))
        })
    }

    /// Wraps `backward`'s code to match [`Recurrent::dropout_train`].
    fn dropout_backward(&self, code: TokenStream, need_input_grad: bool) -> TokenStream {
        if self.input_dropout().is_none() {
            return code;
        }
        let scale = if need_input_grad {
            quote!(::kiln::__private::layers::dropout::backward(multipliers.as_deref(), dx.as_mut_slice());)
        } else {
            quote!()
        };
        quote!({
            let (cache, dropped, multipliers) = cache;
            #[allow(unused_mut)]
            let mut dx = {
                let x = &dropped;
                #code
            };
            #scale
            pass.pool.give(dropped);
            if let ::core::option::Option::Some(multipliers) = multipliers {
                pass.pool.give_vec(multipliers);
            }
            dx
        })
    }
}

/// `recurrent_dropout` in training (see the module doc): per sample, one mask per gate
/// block on the input (with `dropout`) and on `h`, drawn like `Dropout`'s from the layer's
/// seed and the training step, handed to the runtime's `GateDropout`.
impl Recurrent {
    /// Code drawing this pass's masks: `Some((input masks, recurrent masks))` in training
    /// (`n` samples of `(gates / units, features)` and `(gates / units, units)` values, the
    /// input ones only with `dropout`), `None` otherwise.
    fn gate_masks(&self) -> TokenStream {
        let blocks = self.cell.gates();
        let (f, u, seed) = (self.features, self.units, self.dropout_seed);
        let (rate, recurrent_rate) = (self.dropout, self.recurrent_dropout);
        let dropout = quote!(::kiln::__private::layers::dropout::Dropout);
        let input = if rate > 0.0 {
            quote!({
                let dropout = #dropout {
                    rate: #rate,
                    shape: &[#blocks, #f],
                    noise_shape: &[#blocks, #f],
                    per_sample: true,
                    seed: #seed,
                };
                let mut masks = pass.pool.take_vec_to_overwrite(n * #blocks * #f);
                dropout.multipliers_into(n, &mut rng, &mut draws, &mut masks);
                ::core::option::Option::Some(masks)
            })
        } else {
            quote!(::core::option::Option::None)
        };
        let draws = blocks * f.max(u);
        quote!(if pass.training {
            let recurrent = #dropout {
                rate: #recurrent_rate,
                shape: &[#blocks, #u],
                noise_shape: &[#blocks, #u],
                per_sample: true,
                seed: #seed,
            };
            // One stream for both kinds of mask, input first (buffers sized for either).
            let mut rng = recurrent.rng(pass);
            let mut draws = pass.pool.take_vec_to_overwrite(n * #draws);
            let input: ::core::option::Option<::kiln::__private::Vec<f32>> = #input;
            let mut masks = pass.pool.take_vec_to_overwrite(n * #blocks * #u);
            recurrent.multipliers_into(n, &mut rng, &mut draws, &mut masks);
            pass.pool.give_vec(draws);
            ::core::option::Option::Some((input, masks))
        } else {
            ::core::option::Option::None
        })
    }

    /// The runtime's view of `masks` (from [`Recurrent::gate_masks`]).
    fn gate_dropout_view() -> TokenStream {
        quote!(match &masks {
            ::core::option::Option::Some((input, recurrent)) => {
                ::kiln::__private::layers::recurrent::GateDropout {
                    input: input.as_deref(),
                    recurrent: ::core::option::Option::Some(&recurrent[..]),
                }
            }
            ::core::option::Option::None => ::core::default::Default::default(),
        })
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
                    stateful = 1,
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
            "`stateful` of `LSTM`",
            "`return_state = True` of `LSTM` is not supported yet",
            "`dropout` of `LSTM` must be at least 0 and below 1, found `1.0`",
            "unknown activation `sigmoyd`",
            "`LSTM` expects a rank-2 input `(timesteps, features)`, but its input (8,) from layer `dense` has rank 1",
        ] {
            assert!(e.contains(part), "{part} not in {e}");
        }
    }
}
