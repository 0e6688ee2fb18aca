//! Keras's `SimpleRNN`: [`SimpleRnn::new`] / [`SimpleRnn::baked`] build it,
//! [`SimpleRnn::forward`] runs it on whole samples, [`SimpleRnn::forward_train`] and
//! [`SimpleRnn::backward`] train it (the recurrence is [`super::recurrent::Sequence`]'s).

#[cfg(feature = "alloc")]
use super::recurrent::Grads;
use super::recurrent::{activate, add_outer, mat_vec, vec_mat, Cell, GateDropout, Sequence};
use super::Weights;
use crate::activations::Activation;
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::Param;
#[cfg(feature = "alloc")]
use alloc::vec;

/// A fully connected recurrent layer: `h = activation(x_t · kernel + h · recurrent_kernel +
/// bias)`, the output being `h` (every step's with `return_sequences`).
///
/// # Shapes
/// `(timesteps, features)` -> `(units,)`, or `(timesteps, units)` with `return_sequences`.
///
/// # Weights
/// Keras's `simple_rnn/simple_rnn_cell/...`: `kernel` `(features, units)`,
/// `recurrent_kernel` `(units, units)`, `bias` `(units,)` when `use_bias`; row-major.
#[derive(Debug, Clone)]
pub struct SimpleRnn {
    /// `(features, units)`, row-major.
    pub kernel: Param<[f32]>,
    /// `(units, units)`, row-major.
    pub recurrent_kernel: Param<[f32]>,
    /// `(units,)`.
    pub bias: Option<Param<[f32]>>,
    /// Timesteps, features and direction.
    pub sequence: Sequence,
    units: usize,
    activation: Activation,
}

impl SimpleRnn {
    /// A layer initialised from `seed` (kernel from stream `first_weight`, recurrent kernel
    /// the next, bias the one after).
    #[cfg(feature = "alloc")]
    pub fn new(
        sequence: Sequence,
        units: usize,
        activation: Activation,
        use_bias: bool,
        initializers: [Initializer; 3],
        seed: u64,
        first_weight: usize,
    ) -> Self {
        let f = sequence.features;
        let mut kernel = vec![0.0; f * units];
        initializers[0].fill(
            &mut kernel,
            &[f, units],
            &mut weight_rng(seed, first_weight),
        );
        let mut recurrent = vec![0.0; units * units];
        initializers[1].fill(
            &mut recurrent,
            &[units, units],
            &mut weight_rng(seed, first_weight + 1),
        );
        let bias = use_bias.then(|| {
            let mut bias = vec![0.0; units];
            initializers[2].fill(&mut bias, &[units], &mut weight_rng(seed, first_weight + 2));
            Param::heap(bias.into_boxed_slice())
        });
        SimpleRnn {
            kernel: Param::heap(kernel.into_boxed_slice()),
            recurrent_kernel: Param::heap(recurrent.into_boxed_slice()),
            bias,
            sequence,
            units,
            activation,
        }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`).
    pub const fn baked(
        sequence: Sequence,
        units: usize,
        activation: Activation,
        kernel: &'static [f32],
        recurrent_kernel: &'static [f32],
        bias: Option<&'static [f32]>,
    ) -> Self {
        SimpleRnn {
            kernel: Param::baked(kernel),
            recurrent_kernel: Param::baked(recurrent_kernel),
            bias: match bias {
                Some(b) => Some(Param::baked(b)),
                None => None,
            },
            sequence,
            units,
            activation,
        }
    }

    /// Scratch [`SimpleRnn::forward`] needs (see [`Sequence::work_len`]).
    pub fn work_len(&self, precompute: bool) -> usize {
        self.sequence.work_len(self, precompute)
    }

    /// Values [`SimpleRnn::step`] carries from one timestep to the next (`h`, then the rest).
    pub fn state_len(&self) -> usize {
        Cell::state_len(self)
    }

    /// Scratch [`SimpleRnn::step`] needs.
    pub fn step_work_len(&self) -> usize {
        super::recurrent::stream_work_len(self)
    }

    /// One timestep for streaming (`kiln::Streaming`): `x` the timestep's features, `keep`
    /// its mask, `state` ([`SimpleRnn::state_len`] values, zeros at the start) carried between
    /// calls, `y` the output `h`; see [`super::recurrent::stream_step`].
    pub fn step(&self, x: &[f32], keep: bool, state: &mut [f32], work: &mut [f32], y: &mut [f32]) {
        super::recurrent::stream_step(self, x, keep, state, work, y);
    }

    /// Values [`SimpleRnn::forward_train`] keeps per sample.
    pub fn cache_len(&self) -> usize {
        self.sequence.cache_len(self)
    }

    /// The layer on whole samples (`x` row-major `(timesteps, features)` each, `mask` one
    /// `bool` per timestep), into `y`; `work` as [`SimpleRnn::work_len`].
    pub fn forward(&self, x: &[f32], mask: Option<&[bool]>, y: &mut [f32], work: &mut [f32]) {
        self.sequence
            .forward(self, x, mask, GateDropout::default(), y, work, None);
    }

    /// [`SimpleRnn::forward`] keeping what the backward pass needs in `cache`
    /// ([`SimpleRnn::cache_len`] per sample).
    pub fn forward_train(
        &self,
        x: &[f32],
        mask: Option<&[bool]>,
        y: &mut [f32],
        work: &mut [f32],
        cache: &mut [f32],
    ) {
        self.forward_train_dropout(x, mask, GateDropout::default(), y, work, cache);
    }

    /// Scratch [`SimpleRnn::forward_train_dropout`] and [`SimpleRnn::backward_dropout`] need beyond
    /// `work_len` (see [`Sequence::dropout_work_len`]).
    pub fn dropout_work_len(&self) -> usize {
        self.sequence.dropout_work_len(self)
    }

    /// [`SimpleRnn::forward_train`] with `recurrent_dropout`'s masks (and `dropout`'s with it;
    /// see [`GateDropout`]); `work` holds [`SimpleRnn::dropout_work_len`] more values.
    pub fn forward_train_dropout(
        &self,
        x: &[f32],
        mask: Option<&[bool]>,
        dropout: GateDropout<'_>,
        y: &mut [f32],
        work: &mut [f32],
        cache: &mut [f32],
    ) {
        self.sequence
            .forward(self, x, mask, dropout, y, work, Some(cache));
    }

    /// Backpropagation through time: adds the weight gradients (`grads[0..3]` in Keras's
    /// order) and writes the input gradient into `dx` when given. `dp` holds
    /// `timesteps * units` values per sample, `work` `work_len(false)`.
    #[cfg(feature = "alloc")]
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[f32],
        mask: Option<&[bool]>,
        cache: &[f32],
        dy: &[f32],
        dp: &mut [f32],
        work: &mut [f32],
        grads: &mut [alloc::vec::Vec<f32>],
        dx: Option<&mut [f32]>,
    ) {
        let none = GateDropout::default();
        self.backward_dropout(x, mask, none, cache, dy, dp, work, grads, dx);
    }

    /// [`SimpleRnn::backward`] for [`SimpleRnn::forward_train_dropout`]: the same `dropout` masks;
    /// `work` holds [`SimpleRnn::dropout_work_len`] more values.
    #[cfg(feature = "alloc")]
    #[allow(clippy::too_many_arguments)]
    pub fn backward_dropout(
        &self,
        x: &[f32],
        mask: Option<&[bool]>,
        dropout: GateDropout<'_>,
        cache: &[f32],
        dy: &[f32],
        dp: &mut [f32],
        work: &mut [f32],
        grads: &mut [alloc::vec::Vec<f32>],
        dx: Option<&mut [f32]>,
    ) {
        let (kernel, rest) = grads.split_at_mut(1);
        let (recurrent, bias) = rest.split_at_mut(1);
        let grads = Grads {
            kernel: &mut kernel[0],
            recurrent: &mut recurrent[0],
            input_bias: bias.first_mut().map(|b| &mut b[..]),
            recurrent_bias: None,
        };
        self.sequence
            .backward(self, x, mask, dropout, cache, dy, dp, work, grads, dx);
    }
}

impl Cell for SimpleRnn {
    fn units(&self) -> usize {
        self.units
    }
    fn gates(&self) -> usize {
        self.units
    }
    fn state_len(&self) -> usize {
        self.units
    }
    fn step_cache_len(&self) -> usize {
        self.units
    }
    fn step_work_len(&self) -> usize {
        self.units
    }
    fn kernel(&self) -> &[f32] {
        &self.kernel
    }
    fn recurrent_kernel(&self) -> &[f32] {
        &self.recurrent_kernel
    }
    fn input_bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    fn step(
        &self,
        p: &[f32],
        recurrent: &[f32],
        state: &mut [f32],
        work: &mut [f32],
        cache: Option<&mut [f32]>,
    ) {
        let u = self.units;
        // The cache keeps the pre-activation; the new `h` is the next step's state.
        let pre = match cache {
            Some(cache) => cache,
            None => work,
        };
        let pre = &mut pre[..u];
        pre.copy_from_slice(&p[..u]);
        vec_mat(state, recurrent, u, 0, 1.0, pre);
        activate(self.activation, pre, state);
    }

    fn step_backward(
        &self,
        cache: &[f32],
        prev: &[f32],
        recurrent: &[f32],
        dstate: &mut [f32],
        dp: &mut [f32],
        grad_recurrent: &mut [f32],
        _grad_bias: Option<&mut [f32]>,
        work: &mut [f32],
    ) {
        let u = self.units;
        let pre = &cache[..u];
        // `h` after the step, for activations whose derivative reads the output.
        let h = &mut work[..u];
        activate(self.activation, pre, h);
        dp[..u].copy_from_slice(dstate);
        self.activation.backward(pre, h, &mut dp[..u], u);
        add_outer(prev, &dp[..u], grad_recurrent, u, 0);
        mat_vec(recurrent, u, 0, &dp[..u], 0.0, dstate);
    }
}

impl Weights for SimpleRnn {
    fn weight(&self, index: usize) -> &[f32] {
        match index {
            0 => &self.kernel,
            1 => &self.recurrent_kernel,
            _ => self.bias.as_deref().unwrap_or(&[]),
        }
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        match index {
            0 => self.kernel.make_mut(),
            1 => self.recurrent_kernel.make_mut(),
            _ => match &mut self.bias {
                Some(b) => b.make_mut(),
                None => &mut [],
            },
        }
    }
}
