//! Keras's `SimpleRNN`: [`SimpleRnn`] is [`Rnn`] around a [`SimpleRnnCell`];
//! [`SimpleRnn::new`] / [`SimpleRnn::baked`] build it, [`SimpleRnn::step`] streams it, and
//! [`Rnn::forward`], [`Rnn::forward_train`] and [`Rnn::backward`] run and train it on whole
//! samples.

use super::recurrent::{activate, add_outer, mat_vec, vec_mat, Cell, Rnn, Sequence};
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
/// `recurrent_kernel` `(units, units)`, `bias` `(units,)` when `use_bias`; row-major; the
/// fields of [`SimpleRnnCell`].
///
/// [`Rnn`]'s methods run it on whole samples ([`Rnn::forward`]) and train it
/// ([`Rnn::forward_train`], [`Rnn::backward`]); [`SimpleRnn::step`] streams it one timestep at a
/// time.
pub type SimpleRnn = Rnn<SimpleRnnCell>;

/// [`SimpleRnn`]'s weights and step arithmetic (Keras's `SimpleRNNCell`).
#[derive(Debug, Clone)]
pub struct SimpleRnnCell {
    /// `(features, units)`, row-major.
    pub kernel: Param<[f32]>,
    /// `(units, units)`, row-major.
    pub recurrent_kernel: Param<[f32]>,
    /// `(units,)`.
    pub bias: Option<Param<[f32]>>,
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
            Param::heap(&bias[..])
        });
        let cell = SimpleRnnCell {
            kernel: Param::heap(&kernel[..]),
            recurrent_kernel: Param::heap(&recurrent[..]),
            bias,
            units,
            activation,
        };
        Rnn { cell, sequence }
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
        let cell = SimpleRnnCell {
            kernel: Param::baked(kernel),
            recurrent_kernel: Param::baked(recurrent_kernel),
            bias: match bias {
                Some(b) => Some(Param::baked(b)),
                None => None,
            },
            units,
            activation,
        };
        Rnn { cell, sequence }
    }

    /// Scratch [`SimpleRnn::step`] needs.
    pub fn step_work_len(&self) -> usize {
        super::recurrent::stream_work_len(&self.cell)
    }

    /// One timestep for streaming (`kiln::Streaming`): `x` the timestep's features, `keep`
    /// its mask, `state` ([`Rnn::state_len`] values, zeros at the start) carried between
    /// calls, `y` the output `h`; see [`super::recurrent::stream_step`].
    pub fn step(&self, x: &[f32], keep: bool, state: &mut [f32], work: &mut [f32], y: &mut [f32]) {
        super::recurrent::stream_step(&self.cell, x, keep, state, work, y);
    }
}

impl Cell for SimpleRnnCell {
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

impl Weights for SimpleRnnCell {
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
