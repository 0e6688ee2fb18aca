//! The recurrence shared by `SimpleRNN`, `LSTM` and `GRU`: [`Rnn`] is the layer (Keras's
//! `RNN` around a [`Cell`]), whose [`Rnn::forward`], [`Rnn::forward_train`] and
//! [`Rnn::backward`] every recurrent layer shares; [`Sequence::forward`] runs the cell over
//! whole samples (inference and training), [`Sequence::backward`] is backpropagation through
//! time, both with `recurrent_dropout`'s per-sample masks when given a [`GateDropout`]. Each
//! layer's file holds only its cell, its constructors and its streaming step.
//!
//! Keras's rules, from `keras/src/backend/jax/rnn.py` and `layers/rnn/rnn.py`:
//! - the initial state is zeros;
//! - a masked timestep (mask `false`) leaves the state as it was and outputs the previous
//!   output (the state's `h`), so a sequence masked everywhere outputs zeros;
//! - `go_backwards` processes the timesteps last to first, and with `return_sequences` the
//!   outputs come in processing order (the mask passed on is the input's, unreversed).
//!
//! Per sample, the input projection `x · kernel + input bias` of every timestep is one GEMM
//! (when `work` has room for it, see [`Sequence::work_len`]); each step then adds
//! `h · recurrent_kernel` and applies the gates.

use super::Weights;
use crate::activations::Activation;
use crate::gemm::{gemm, Strided};

/// A recurrent cell: the per-step part of a layer (Keras's `*Cell`).
pub trait Cell {
    /// Units (the size of `h` and of the output).
    fn units(&self) -> usize;
    /// Width of the projections, `G`: the columns of `kernel` (`units` times the gates).
    fn gates(&self) -> usize;
    /// Values in the state: `h` first (`units` values), then the rest (LSTM's `c`).
    fn state_len(&self) -> usize;
    /// Values a training step keeps for the backward pass.
    fn step_cache_len(&self) -> usize;
    /// Scratch one step needs.
    fn step_work_len(&self) -> usize;
    /// The `(features, gates)` kernel, row-major.
    fn kernel(&self) -> &[f32];
    /// The bias added to the input projection, if any.
    fn input_bias(&self) -> Option<&[f32]>;
    /// The `(units, gates)` recurrent kernel, row-major.
    fn recurrent_kernel(&self) -> &[f32];
    /// One step: `p` is the timestep's input projection (with the input bias), `recurrent`
    /// the recurrent kernel to use (the layer's own, or its copy with `recurrent_dropout`'s
    /// masks folded in, see [`GateDropout`]); turns `state` into the new state. `cache`
    /// (training) receives `step_cache_len` values.
    fn step(
        &self,
        p: &[f32],
        recurrent: &[f32],
        state: &mut [f32],
        work: &mut [f32],
        cache: Option<&mut [f32]>,
    );
    /// The step's backward pass: `dstate` holds the gradient with respect to the new state
    /// and becomes the one with respect to `prev` (the state before the step); `dp` receives
    /// the gradient with respect to `p` (overwritten); the gradient of the `recurrent`
    /// kernel the step used is added to `grad_recurrent`, and that of a recurrent bias term
    /// (GRU's `reset_after`) to `grad_bias`.
    #[allow(clippy::too_many_arguments)]
    fn step_backward(
        &self,
        cache: &[f32],
        prev: &[f32],
        recurrent: &[f32],
        dstate: &mut [f32],
        dp: &mut [f32],
        grad_recurrent: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        work: &mut [f32],
    );
    /// Where [`Sequence::backward`] adds the weight gradients, from `grads` in Keras's order
    /// (kernel, recurrent kernel, then the bias when there is one): the bias is the input
    /// projection's, unless the cell splits it (GRU's `reset_after`).
    #[cfg(feature = "alloc")]
    fn grads<'a>(&self, grads: &'a mut [alloc::vec::Vec<f32>]) -> Grads<'a> {
        let (kernel, rest) = grads.split_at_mut(1);
        let (recurrent, bias) = rest.split_at_mut(1);
        Grads {
            kernel: &mut kernel[0],
            recurrent: &mut recurrent[0],
            input_bias: bias.first_mut().map(|b| &mut b[..]),
            recurrent_bias: None,
        }
    }
}

/// A recurrent layer, Keras's `RNN` around a [`Cell`] (Keras's `LSTM` is `RNN(LSTMCell)`):
/// [`super::Lstm`], [`super::Gru`] and [`super::SimpleRnn`] are this type with their cells,
/// which build it and stream it one timestep at a time; running and training it on whole
/// samples is the same for all of them, here.
#[derive(Debug, Clone)]
pub struct Rnn<C> {
    /// The weights and the per-step arithmetic.
    pub cell: C,
    /// Timesteps, features and direction.
    pub sequence: Sequence,
}

impl<C: Cell> Rnn<C> {
    /// Scratch [`Rnn::forward`] needs (see [`Sequence::work_len`]).
    pub fn work_len(&self, precompute: bool) -> usize {
        self.sequence.work_len(&self.cell, precompute)
    }

    /// Values the layer's streaming `step` carries from one timestep to the next (`h`, then
    /// the rest: LSTM's `c`).
    pub fn state_len(&self) -> usize {
        self.cell.state_len()
    }

    /// Values [`Rnn::forward_train`] keeps per sample.
    pub fn cache_len(&self) -> usize {
        self.sequence.cache_len(&self.cell)
    }

    /// The layer on whole samples (`x` row-major `(timesteps, features)` each, `mask` one
    /// `bool` per timestep), into `y`; `work` as [`Rnn::work_len`].
    pub fn forward(&self, x: &[f32], mask: Option<&[bool]>, y: &mut [f32], work: &mut [f32]) {
        let none = GateDropout::default();
        self.sequence
            .forward(&self.cell, x, mask, none, y, work, None);
    }

    /// [`Rnn::forward`] keeping what the backward pass needs in `cache`
    /// ([`Rnn::cache_len`] per sample).
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

    /// Scratch [`Rnn::forward_train_dropout`] and [`Rnn::backward_dropout`] need beyond
    /// `work_len` (see [`Sequence::dropout_work_len`]).
    pub fn dropout_work_len(&self) -> usize {
        self.sequence.dropout_work_len(&self.cell)
    }

    /// [`Rnn::forward_train`] with `recurrent_dropout`'s masks (and `dropout`'s with it;
    /// see [`GateDropout`]); `work` holds [`Rnn::dropout_work_len`] more values.
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
            .forward(&self.cell, x, mask, dropout, y, work, Some(cache));
    }

    /// Backpropagation through time: adds the weight gradients (`grads[0..3]` in Keras's
    /// order, the bias only with `use_bias`; see [`Cell::grads`]) and writes the input
    /// gradient into `dx` when given. `dp` holds `timesteps * gates` values per sample
    /// ([`Cell::gates`]: `units` times 1 for SimpleRNN, 4 for LSTM, 3 for GRU), `work`
    /// `work_len(false)`.
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

    /// [`Rnn::backward`] for [`Rnn::forward_train_dropout`]: the same `dropout` masks;
    /// `work` holds [`Rnn::dropout_work_len`] more values.
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
        let grads = self.cell.grads(grads);
        self.sequence
            .backward(&self.cell, x, mask, dropout, cache, dy, dp, work, grads, dx);
    }
}

/// The cell's weights, in Keras's order.
impl<C: Weights> Weights for Rnn<C> {
    fn weight(&self, index: usize) -> &[f32] {
        self.cell.weight(index)
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        self.cell.weight_mut(index)
    }
}

/// How a recurrent layer walks its sequences.
#[derive(Debug, Clone, Copy)]
pub struct Sequence {
    /// Timesteps per sample.
    pub timesteps: usize,
    /// Features per timestep.
    pub features: usize,
    /// Output every step's `h` (`(timesteps, units)`) or only the last (`(units,)`).
    pub return_sequences: bool,
    /// Process the timesteps last to first.
    pub go_backwards: bool,
}

/// `out = h · w[:, col0..col0 + out.len()]` for a row-major `w` with `cols` columns
/// (`beta = 0`), or added to `out` (`beta = 1`).
/// (`crate::gemm::vec_mat`: one pass over the rows with the outputs in registers, where
/// `gemm`'s setup cost as much as the product at this size.)
pub(crate) fn vec_mat(h: &[f32], w: &[f32], cols: usize, col0: usize, beta: f32, out: &mut [f32]) {
    crate::gemm::vec_mat(h, w, cols, col0, beta != 0.0, out);
}

/// `w[:, col0..col0 + b.len()] += a ⊗ b` for a row-major `w` with `cols` columns.
pub(crate) fn add_outer(a: &[f32], b: &[f32], w: &mut [f32], cols: usize, col0: usize) {
    for (r, &a) in a.iter().enumerate() {
        if a != 0.0 {
            let row = &mut w[r * cols + col0..r * cols + col0 + b.len()];
            for (o, &b) in row.iter_mut().zip(b) {
                *o += a * b;
            }
        }
    }
}

/// `out = w[:, col0..col0 + d.len()] · d` for a row-major `w` with `cols` columns (the
/// gradient through [`vec_mat`]), or added to `out` (`beta = 1`).
pub(crate) fn mat_vec(w: &[f32], cols: usize, col0: usize, d: &[f32], beta: f32, out: &mut [f32]) {
    let (rows, width) = (out.len(), d.len());
    gemm(
        1.0,
        &w[col0..],
        Strided {
            rows,
            cols: width,
            row_stride: cols,
            col_stride: 1,
        },
        d,
        Strided::column_major(width, 1),
        beta,
        out,
        Strided::column_major(rows, 1),
    );
}

/// `act` applied to `x` into `y`, vectors of `units`.
pub(crate) fn activate(act: Activation, x: &[f32], y: &mut [f32]) {
    y.copy_from_slice(x);
    act.apply(y, y.len());
}

impl Sequence {
    /// Per-sample output length.
    pub const fn output_len(&self, units: usize) -> usize {
        if self.return_sequences {
            self.timesteps * units
        } else {
            units
        }
    }

    /// Scratch [`Sequence::forward`] needs per call: with `precompute`, room for the input
    /// projection of a whole sequence (one GEMM), otherwise one timestep at a time.
    pub fn work_len(&self, cell: &impl Cell, precompute: bool) -> usize {
        let projections = if precompute {
            self.timesteps * cell.gates()
        } else {
            cell.gates()
        };
        projections + cell.state_len() + cell.step_work_len()
    }

    /// Values a training forward pass keeps per sample for [`Sequence::backward`].
    pub fn cache_len(&self, cell: &impl Cell) -> usize {
        self.timesteps * (cell.state_len() + cell.step_cache_len())
    }

    fn timestep(&self, step: usize) -> usize {
        if self.go_backwards {
            self.timesteps - 1 - step
        } else {
            step
        }
    }

    /// Extra scratch [`Sequence::forward`] and [`Sequence::backward`] need, in front of
    /// their usual `work`, when given [`GateDropout`] masks: a masked kernel
    /// `(features, gates)` and two masked recurrent kernels `(units, gates)`.
    pub fn dropout_work_len(&self, cell: &impl Cell) -> usize {
        (self.features + 2 * cell.units()) * cell.gates()
    }

    /// The layer on whole samples: `x` row-major `(timesteps, features)` each, `mask` one
    /// `bool` per timestep of each sample (`true` = keep), `y` the outputs. `work` holds at
    /// least `work_len(cell, false)` values; with `work_len(cell, true)` the input
    /// projections are one GEMM per sample. `cache` (training) receives `cache_len` values
    /// per sample. With `dropout` masks, `work` starts with [`Sequence::dropout_work_len`]
    /// more values.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        cell: &impl Cell,
        x: &[f32],
        mask: Option<&[bool]>,
        dropout: GateDropout<'_>,
        y: &mut [f32],
        work: &mut [f32],
        mut cache: Option<&mut [f32]>,
    ) {
        let (t_len, f, g, u) = (self.timesteps, self.features, cell.gates(), cell.units());
        let (s_len, c_len) = (cell.state_len(), cell.step_cache_len());
        let in_len = t_len * f;
        if in_len == 0 || u == 0 {
            y.fill(0.0);
            return;
        }
        let (masked, work) = if dropout.is_some() {
            work.split_at_mut(self.dropout_work_len(cell))
        } else {
            work.split_at_mut(0)
        };
        let (masked_kernel, masked_recurrent) = masked.split_at_mut(masked.len().min(f * g));
        let precompute = work.len() >= self.work_len(cell, true);
        let (proj, rest) = work.split_at_mut(if precompute { t_len * g } else { g });
        let (state, step_work) = rest.split_at_mut(s_len);
        let out_len = self.output_len(u);
        let samples = x.len() / in_len;
        for n in 0..samples {
            let xs = &x[n * in_len..(n + 1) * in_len];
            let ys = &mut y[n * out_len..(n + 1) * out_len];
            let kernel = dropout.kernel(cell, n, f, masked_kernel);
            let recurrent = dropout.recurrent_kernel(cell, n, masked_recurrent);
            if precompute {
                self.project(cell, kernel, xs, t_len, proj);
            }
            state.fill(0.0);
            for s in 0..t_len {
                let t = self.timestep(s);
                let keep = mask.is_none_or(|m| m.get(n * t_len + t).copied().unwrap_or(true));
                if let Some(cache) = cache.as_deref_mut() {
                    let per = s_len + c_len;
                    let at = (n * t_len + s) * per;
                    cache[at..at + s_len].copy_from_slice(state);
                }
                if keep {
                    let p: &[f32] = if precompute {
                        &proj[t * g..(t + 1) * g]
                    } else {
                        self.project(cell, kernel, &xs[t * f..(t + 1) * f], 1, proj);
                        proj
                    };
                    let step_cache = cache.as_deref_mut().map(|cache| {
                        let at = (n * t_len + s) * (s_len + c_len) + s_len;
                        &mut cache[at..at + c_len]
                    });
                    cell.step(p, recurrent, state, step_work, step_cache);
                }
                if self.return_sequences {
                    ys[s * u..(s + 1) * u].copy_from_slice(&state[..u]);
                }
            }
            if !self.return_sequences {
                ys.copy_from_slice(&state[..u]);
            }
        }
    }

    /// `x · kernel + input bias` for `steps` timesteps, into `out` (`steps * gates`).
    fn project(&self, cell: &impl Cell, kernel: &[f32], x: &[f32], steps: usize, out: &mut [f32]) {
        let (f, g) = (self.features, cell.gates());
        gemm(
            1.0,
            kernel,
            Strided::column_major(g, f),
            &x[..steps * f],
            Strided::column_major(f, steps),
            0.0,
            &mut out[..steps * g],
            Strided::column_major(g, steps),
        );
        if let Some(bias) = cell.input_bias() {
            for row in out[..steps * g].chunks_exact_mut(g) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
        }
    }

    /// Backpropagation through time over whole samples. `x`, `mask`, `dropout` and `cache`
    /// as the training forward pass saw them, `dy` the gradient with respect to its output.
    /// `dp` is scratch of `timesteps * gates` per sample (the gradients with respect to the
    /// input projections), `work` of `state_len + step_work_len` values (with `dropout`
    /// masks, [`Sequence::dropout_work_len`] more in front). Adds the weight gradients:
    /// `grads.kernel` `(features, gates)`, `grads.recurrent` `(units, gates)`,
    /// `grads.input_bias` and `grads.recurrent_bias` (each cell says how its bias splits);
    /// writes the input gradient into `dx` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        cell: &impl Cell,
        x: &[f32],
        mask: Option<&[bool]>,
        dropout: GateDropout<'_>,
        cache: &[f32],
        dy: &[f32],
        dp: &mut [f32],
        work: &mut [f32],
        grads: Grads<'_>,
        mut dx: Option<&mut [f32]>,
    ) {
        let (t_len, f, g, u) = (self.timesteps, self.features, cell.gates(), cell.units());
        let (s_len, c_len) = (cell.state_len(), cell.step_cache_len());
        let in_len = t_len * f;
        if in_len == 0 || u == 0 {
            if let Some(dx) = dx {
                dx.fill(0.0);
            }
            return;
        }
        let Grads {
            kernel: grad_kernel,
            recurrent: grad_recurrent,
            input_bias: grad_input_bias,
            mut recurrent_bias,
        } = grads;
        let samples = x.len() / in_len;
        let out_len = self.output_len(u);
        let (masked, work) = if dropout.is_some() {
            work.split_at_mut(self.dropout_work_len(cell))
        } else {
            work.split_at_mut(0)
        };
        let (masked_kernel, rest) = masked.split_at_mut(masked.len().min(f * g));
        let (masked_recurrent, masked_grad) = rest.split_at_mut(rest.len() / 2);
        let (dstate, step_work) = work.split_at_mut(s_len);
        let dp = &mut dp[..samples * t_len * g];
        for n in 0..samples {
            let dys = &dy[n * out_len..(n + 1) * out_len];
            let dps = &mut dp[n * t_len * g..(n + 1) * t_len * g];
            dps.fill(0.0);
            dstate.fill(0.0);
            if !self.return_sequences {
                dstate[..u].copy_from_slice(dys);
            }
            // With a recurrent mask, the steps use (and differentiate) this sample's masked
            // copy of the recurrent kernel; its gradient goes back through the mask below.
            let recurrent = dropout.recurrent_kernel(cell, n, masked_recurrent);
            let step_grad: &mut [f32] = if dropout.recurrent.is_some() {
                masked_grad.fill(0.0);
                &mut *masked_grad
            } else {
                &mut *grad_recurrent
            };
            for s in (0..t_len).rev() {
                let t = self.timestep(s);
                if self.return_sequences {
                    for (d, &g) in dstate[..u].iter_mut().zip(&dys[s * u..(s + 1) * u]) {
                        *d += g;
                    }
                }
                let keep = mask.is_none_or(|m| m.get(n * t_len + t).copied().unwrap_or(true));
                if !keep {
                    // The state passed through unchanged: so does its gradient.
                    continue;
                }
                let at = (n * t_len + s) * (s_len + c_len);
                let prev = &cache[at..at + s_len];
                let step_cache = &cache[at + s_len..at + s_len + c_len];
                cell.step_backward(
                    step_cache,
                    prev,
                    recurrent,
                    dstate,
                    &mut dps[t * g..(t + 1) * g],
                    step_grad,
                    recurrent_bias.as_deref_mut(),
                    step_work,
                );
            }
            if let Some(m) = dropout.recurrent {
                add_masked(masked_grad, &m[n * g..(n + 1) * g], g, u, grad_recurrent);
            }
            if let Some(m) = dropout.input {
                // This sample's kernel was masked: its gradient dP · Xᵀ goes back through
                // the mask, and dX comes through the masked kernel.
                let xs = &x[n * in_len..(n + 1) * in_len];
                gemm(
                    1.0,
                    dps,
                    Strided::column_major(g, t_len),
                    xs,
                    Strided::column_major(f, t_len).t(),
                    0.0,
                    masked_kernel,
                    Strided::column_major(g, f),
                );
                let per = f * (g / u);
                add_masked(masked_kernel, &m[n * per..(n + 1) * per], g, u, grad_kernel);
                if let Some(dx) = dx.as_deref_mut() {
                    let kernel = dropout.kernel(cell, n, f, masked_kernel);
                    gemm(
                        1.0,
                        kernel,
                        Strided::column_major(g, f).t(),
                        dps,
                        Strided::column_major(g, t_len),
                        0.0,
                        &mut dx[n * in_len..(n + 1) * in_len],
                        Strided::column_major(f, t_len),
                    );
                }
            }
        }
        let columns = samples * t_len;
        if dropout.input.is_none() {
            // kernel (features x gates, row-major = gates x features column-major) +=
            // dP (g x columns) · Xᵀ (columns x f).
            gemm(
                1.0,
                dp,
                Strided::column_major(g, columns),
                &x[..columns * f],
                Strided::column_major(f, columns).t(),
                1.0,
                grad_kernel,
                Strided::column_major(g, f),
            );
        }
        if let Some(grad_bias) = grad_input_bias {
            for row in dp.chunks_exact(g) {
                for (b, d) in grad_bias.iter_mut().zip(row) {
                    *b += d;
                }
            }
        }
        if let (Some(dx), None) = (dx, dropout.input) {
            // dX (f x columns) = kernel (f x g) · dP (g x columns).
            gemm(
                1.0,
                cell.kernel(),
                Strided::column_major(g, f).t(),
                dp,
                Strided::column_major(g, columns),
                0.0,
                &mut dx[..columns * f],
                Strided::column_major(f, columns),
            );
        }
    }
}

/// Keras 3's dropout masks of one training pass of a layer with `recurrent_dropout`
/// (`layers/rnn/dropout_rnn_cell.py`; LSTM and GRU switch to `implementation = 1`): one
/// mask per sequence, shared by every timestep, each value 0 or `1 / (1 - rate)`, and, for
/// LSTM and GRU, one per gate (`i, f, c, o`; `z, r, h`).
///
/// A gate's projection of a masked vector is the vector's projection through the kernel's
/// rows scaled by the mask, `(v * m_k) · W_k = v · (diag(m_k) W_k)`, so each sample runs
/// the ordinary recurrence with masked copies of the kernels, and the kernels' gradients
/// go back through the masks. `h` is masked only where it is projected: the LSTM carry,
/// GRU's `z * h` and the state itself are not (as in Keras).
#[derive(Debug, Clone, Copy, Default)]
pub struct GateDropout<'a> {
    /// `dropout`'s masks on the input: per sample, one row of `features` per gate block
    /// (`gates / units` of them: SimpleRNN 1, LSTM 4, GRU 3), row-major.
    pub input: Option<&'a [f32]>,
    /// `recurrent_dropout`'s masks on `h`: per sample, one row of `units` per gate block.
    pub recurrent: Option<&'a [f32]>,
}

impl GateDropout<'_> {
    fn is_some(&self) -> bool {
        self.input.is_some() || self.recurrent.is_some()
    }

    /// Sample `n`'s input kernel: the cell's, or its copy masked into `buf`.
    fn kernel<'b>(&self, cell: &'b impl Cell, n: usize, f: usize, buf: &'b mut [f32]) -> &'b [f32] {
        let blocks = cell.gates() / cell.units();
        match self.input {
            Some(m) => {
                let m = &m[n * blocks * f..(n + 1) * blocks * f];
                mask_rows(cell.kernel(), m, cell.gates(), cell.units(), buf);
                buf
            }
            None => cell.kernel(),
        }
    }

    /// Sample `n`'s recurrent kernel: the cell's, or its copy masked into `buf`.
    fn recurrent_kernel<'b>(&self, cell: &'b impl Cell, n: usize, buf: &'b mut [f32]) -> &'b [f32] {
        let g = cell.gates();
        match self.recurrent {
            Some(m) => {
                mask_rows(
                    cell.recurrent_kernel(),
                    &m[n * g..(n + 1) * g],
                    g,
                    cell.units(),
                    buf,
                );
                buf
            }
            None => cell.recurrent_kernel(),
        }
    }
}

/// `out[j, k*u + c] = w[j, k*u + c] * mask[k, j]`: the row-major `(rows, g)` matrix `w`
/// with its rows scaled per gate block (`g / u` blocks of `u` columns) by `mask`
/// (`(blocks, rows)`, row-major).
fn mask_rows(w: &[f32], mask: &[f32], g: usize, u: usize, out: &mut [f32]) {
    let rows = w.len() / g;
    for (j, (row, out)) in w.chunks_exact(g).zip(out.chunks_exact_mut(g)).enumerate() {
        for (k, (block, out)) in row.chunks_exact(u).zip(out.chunks_exact_mut(u)).enumerate() {
            let m = mask[k * rows + j];
            for (o, v) in out.iter_mut().zip(block) {
                *o = v * m;
            }
        }
    }
}

/// The gradient through [`mask_rows`]: `grad[j, k*u + c] += masked[j, k*u + c] * mask[k, j]`.
fn add_masked(masked: &[f32], mask: &[f32], g: usize, u: usize, grad: &mut [f32]) {
    let rows = masked.len() / g;
    for (j, (row, out)) in masked
        .chunks_exact(g)
        .zip(grad.chunks_exact_mut(g))
        .enumerate()
    {
        for (k, (block, out)) in row.chunks_exact(u).zip(out.chunks_exact_mut(u)).enumerate() {
            let m = mask[k * rows + j];
            if m != 0.0 {
                for (o, v) in out.iter_mut().zip(block) {
                    *o += v * m;
                }
            }
        }
    }
}

/// Scratch [`stream_step`] needs for `cell`: one timestep's projection and the cell's step
/// scratch (the macro sizes a stack array with the same formula, `macros/src/layers/
/// recurrent.rs`, `Cell::step_len`).
pub fn stream_work_len(cell: &impl Cell) -> usize {
    cell.gates() + cell.step_work_len()
}

/// One timestep of a recurrent layer, for `kiln::Streaming`: `x` the timestep's features,
/// `keep` its mask (a masked step leaves `state` as it is, as [`Sequence::forward`] does),
/// `state` the layer's carried state (`cell.state_len()` values, zeros at the start of a
/// sequence), `y` receives the output (`h`, `units` values). `work` holds
/// [`stream_work_len`] values. Feeding a sequence step by step gives the rows of
/// [`Sequence::forward`]'s `return_sequences` output (without `go_backwards`).
pub fn stream_step(
    cell: &impl Cell,
    x: &[f32],
    keep: bool,
    state: &mut [f32],
    work: &mut [f32],
    y: &mut [f32],
) {
    let (g, u) = (cell.gates(), cell.units());
    if keep {
        let (p, step_work) = work.split_at_mut(g);
        project_step(cell, x, p);
        cell.step(p, cell.recurrent_kernel(), state, step_work, None);
    }
    y[..u].copy_from_slice(&state[..u]);
}

/// One timestep's input projection `x · kernel + input bias` into `p` (`gates` values).
pub(crate) fn project_step(cell: &impl Cell, x: &[f32], p: &mut [f32]) {
    match cell.input_bias() {
        Some(bias) => crate::gemm::vec_mat_from(bias, x, cell.kernel(), cell.gates(), 0, p),
        None => vec_mat(x, cell.kernel(), cell.gates(), 0, 0.0, p),
    }
}

/// Where [`Sequence::backward`] adds the weight gradients.
pub struct Grads<'a> {
    /// `(features, gates)`.
    pub kernel: &'a mut [f32],
    /// `(units, gates)`.
    pub recurrent: &'a mut [f32],
    /// The gradient of the bias added to the input projection.
    pub input_bias: Option<&'a mut [f32]>,
    /// The gradient of a bias added to the recurrent projection (GRU's `reset_after`).
    pub recurrent_bias: Option<&'a mut [f32]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Gru, Lstm, SimpleRnn};

    const SEQ: Sequence = Sequence {
        timesteps: 5,
        features: 2,
        return_sequences: false,
        go_backwards: false,
    };
    static ZEROS: [f32; 64] = [0.0; 64];

    /// The macro sizes `predict`'s stack scratch with the same formula
    /// (`macros/src/layers/recurrent.rs`, `Cell::work_len`): projections, state, a step's
    /// scratch.
    #[test]
    fn work_lengths_match_the_macros_formula() {
        let (t, u) = (SEQ.timesteps, 3);
        let rnn = SimpleRnn::baked(SEQ, u, Activation::Tanh, &ZEROS[..6], &ZEROS[..9], None);
        assert_eq!(rnn.work_len(true), t * u + u + u);
        assert_eq!(rnn.work_len(false), u + u + u);
        let lstm = Lstm::baked(
            SEQ,
            u,
            Activation::Tanh,
            Activation::Sigmoid,
            &ZEROS[..24],
            &ZEROS[..36],
            None,
        );
        assert_eq!(lstm.work_len(true), t * 4 * u + 2 * u + 10 * u);
        assert_eq!(lstm.work_len(false), 4 * u + 2 * u + 10 * u);
        let gru = Gru::baked(
            SEQ,
            u,
            Activation::Tanh,
            Activation::Sigmoid,
            true,
            &ZEROS[..18],
            &ZEROS[..27],
            None,
        );
        assert_eq!(gru.work_len(true), t * 3 * u + u + 10 * u);
        assert_eq!(gru.work_len(false), 3 * u + u + 10 * u);
    }

    /// A masked step keeps the state; the sequence output repeats the previous output, in
    /// processing order with `go_backwards`; the scratch size picks the projection path
    /// without changing the numbers.
    #[test]
    fn masked_steps_keep_the_state_in_processing_order() {
        static KERNEL: [f32; 2] = [1.0, 0.5];
        static RECURRENT: [f32; 1] = [0.5];
        let seq = Sequence {
            timesteps: 3,
            features: 2,
            return_sequences: true,
            go_backwards: true,
        };
        let rnn = SimpleRnn::baked(seq, 1, Activation::Linear, &KERNEL, &RECURRENT, None);
        let x = [1.0, 0.0, 2.0, 2.0, 0.0, 4.0];
        let mask = [true, false, true];
        let mut y = [0.0; 3];
        let mut work = [0.0; 16];
        rnn.forward(&x, Some(&mask), &mut y, &mut work);
        // Backwards: step 2 (x·k = 2) -> 2; step 1 masked -> 2; step 0 (1 + 0.5 * 2) -> 2.
        assert_eq!(y, [2.0, 2.0, 2.0]);
        let mut small = [0.0; 3];
        let mut y2 = [0.0; 3];
        rnn.forward(&x, Some(&mask), &mut y2, &mut small);
        assert_eq!(y, y2);
        rnn.forward(&x, Some(&[false; 3]), &mut y, &mut work);
        assert_eq!(y, [0.0; 3]);
    }

    /// A layer's training entry points, for the tests below.
    trait Train: crate::layers::Weights {
        /// Units, gates, timesteps, features, cache and output lengths per sample, weights.
        fn sizes(&self) -> [usize; 7];
        fn extra(&self) -> usize;
        fn fwd(&self, x: &[f32], m: &[bool], d: GateDropout, y: &mut [f32], c: &mut [f32]);
        #[allow(clippy::too_many_arguments)]
        fn bwd(
            &self,
            x: &[f32],
            m: &[bool],
            d: GateDropout,
            c: &[f32],
            dy: &[f32],
            g: &mut [Vec<f32>],
            dx: &mut [f32],
        );
    }

    impl<C: Cell + crate::layers::Weights> Train for Rnn<C> {
        fn sizes(&self) -> [usize; 7] {
            let u = self.cell.units();
            let s = self.sequence;
            let w = if self.weight(2).is_empty() { 2 } else { 3 };
            let (g, c) = (self.cell.gates(), self.cache_len());
            [u, g, s.timesteps, s.features, c, s.output_len(u), w]
        }
        fn extra(&self) -> usize {
            self.dropout_work_len()
        }
        fn fwd(&self, x: &[f32], m: &[bool], d: GateDropout, y: &mut [f32], c: &mut [f32]) {
            let mut work = vec![0.0; self.work_len(true) + self.extra()];
            self.forward_train_dropout(x, Some(m), d, y, &mut work, c);
        }
        fn bwd(
            &self,
            x: &[f32],
            m: &[bool],
            d: GateDropout,
            c: &[f32],
            dy: &[f32],
            g: &mut [Vec<f32>],
            dx: &mut [f32],
        ) {
            let (t, gates) = (self.sequence.timesteps, self.cell.gates());
            let n = x.len() / (t * self.sequence.features);
            let mut dp = vec![0.0; n * t * gates];
            let mut work = vec![0.0; self.work_len(false) + self.extra()];
            self.backward_dropout(x, Some(m), d, c, dy, &mut dp, &mut work, g, Some(dx));
        }
    }

    /// With `GateDropout` masks (per sample, per gate block, zeros among them), the
    /// gradients of `Σ y · w` from `backward_dropout` (kernels, biases and the input) equal
    /// central finite differences with the masks fixed.
    fn check_gate_dropout<L: Train>(name: &str, mut layer: L, x: &[f32], mask: &[bool]) {
        let [u, g, t, f, cache_len, out_len, count] = layer.sizes();
        let (blocks, n) = (g / u, x.len() / (t * f));
        let out = n * out_len;
        let pattern = |len: usize, k: usize| -> Vec<f32> {
            (0..len)
                .map(|i| {
                    if (i * 7 + k).is_multiple_of(5) {
                        0.0
                    } else {
                        1.0 / 0.75
                    }
                })
                .collect()
        };
        let input = pattern(n * blocks * f, 1);
        let recurrent = pattern(n * blocks * u, 3);
        let drop = GateDropout {
            input: Some(&input),
            recurrent: Some(&recurrent),
        };
        let w: Vec<f32> = (0..out).map(|i| ((i * 5 % 7) as f32 - 3.0) / 3.0).collect();
        let loss = |layer: &L, x: &[f32]| -> f64 {
            let (mut y, mut cache) = (vec![0.0; out], vec![0.0; n * cache_len]);
            layer.fwd(x, mask, drop, &mut y, &mut cache);
            y.iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum()
        };
        let mut y = vec![0.0; out];
        let mut cache = vec![0.0; n * cache_len];
        layer.fwd(x, mask, drop, &mut y, &mut cache);
        let mut grads: Vec<Vec<f32>> = (0..count)
            .map(|k| vec![0.0; layer.weight(k).len()])
            .collect();
        let mut dx = vec![0.0; x.len()];
        layer.bwd(x, mask, drop, &cache, &w, &mut grads, &mut dx);
        let eps = 1e-2f32;
        let close = |what: String, analytic: f32, numeric: f64| {
            let scale = 1.0f64.max(numeric.abs());
            assert!(
                (f64::from(analytic) - numeric).abs() < 1e-2 * scale,
                "{name} {what}: backward {analytic}, finite difference {numeric}"
            );
        };
        for (k, grad) in grads.iter().enumerate() {
            for (i, &analytic) in grad.iter().enumerate() {
                let old = layer.weight(k)[i];
                layer.weight_mut(k)[i] = old + eps;
                let plus = loss(&layer, x);
                layer.weight_mut(k)[i] = old - eps;
                let minus = loss(&layer, x);
                layer.weight_mut(k)[i] = old;
                let numeric = (plus - minus) / (2.0 * f64::from(eps));
                close(format!("weight {k}[{i}]"), analytic, numeric);
            }
        }
        for i in 0..x.len() {
            let mut xp = x.to_vec();
            xp[i] += eps;
            let plus = loss(&layer, &xp);
            xp[i] -= 2.0 * eps;
            let minus = loss(&layer, &xp);
            close(
                format!("x[{i}]"),
                dx[i],
                (plus - minus) / (2.0 * f64::from(eps)),
            );
        }
        // Masks of ones are no dropout at all.
        let ones_in = vec![1.0; input.len()];
        let ones_rec = vec![1.0; recurrent.len()];
        let ones = GateDropout {
            input: Some(&ones_in),
            recurrent: Some(&ones_rec),
        };
        let (mut a, mut b) = (vec![0.0; out], vec![0.0; out]);
        layer.fwd(x, mask, ones, &mut a, &mut cache);
        layer.fwd(x, mask, GateDropout::default(), &mut b, &mut cache);
        assert_eq!(a, b, "{name}: masks of ones");
    }

    #[test]
    fn gate_dropout_gradients_match_finite_differences() {
        let (t, f, u) = (4, 3, 2);
        let v = |len: usize, k: f32| -> Vec<f32> {
            (0..len)
                .map(|i| ((i as f32 * 0.61 + k).sin()) * 0.9)
                .collect()
        };
        let leak = |v: Vec<f32>| -> &'static [f32] { Box::leak(v.into_boxed_slice()) };
        let x = v(2 * t * f, 0.3);
        let mask = [true, true, false, true, false, true, true, true];
        for (return_sequences, go_backwards) in [(false, false), (true, true), (true, false)] {
            let seq = Sequence {
                timesteps: t,
                features: f,
                return_sequences,
                go_backwards,
            };
            let act = Activation::Tanh;
            let rnn = SimpleRnn::baked(
                seq,
                u,
                act,
                leak(v(f * u, 1.0)),
                leak(v(u * u, 1.1)),
                Some(leak(v(u, 1.2))),
            );
            check_gate_dropout("simple_rnn", rnn, &x, &mask);
            let g = 4 * u;
            let lstm = Lstm::baked(
                seq,
                u,
                act,
                Activation::Sigmoid,
                leak(v(f * g, 2.0)),
                leak(v(u * g, 2.1)),
                Some(leak(v(g, 2.2))),
            );
            check_gate_dropout("lstm", lstm, &x, &mask);
            for reset_after in [true, false] {
                let g = 3 * u;
                let bias = if reset_after { 2 * g } else { g };
                let gru = Gru::baked(
                    seq,
                    u,
                    act,
                    Activation::Sigmoid,
                    reset_after,
                    leak(v(f * g, 3.0)),
                    leak(v(u * g, 3.1)),
                    Some(leak(v(bias, 3.2))),
                );
                check_gate_dropout("gru", gru, &x, &mask);
            }
        }
    }

    /// The one-pass steps of Keras's default gates (LSTM and GRU with `reset_after`, tanh
    /// and sigmoid) give the bits of the general path: the activations applied slice by
    /// slice (`Activation::apply`, the block kernels of this process's instruction set),
    /// then the gate arithmetic, written out here as the general path computes it.
    /// The default-gate steps (one pass; where the vector width divides the gates, the
    /// fused kernels, `lstm.rs` and `gru.rs` `fused_step_*`) against the general path
    /// written out, bit for bit, on this process's instruction set (CI runs every
    /// `KILN_ISA`): unit counts whose gates fill whole vectors in every block size of both
    /// kernels (8, 16, 32, 48) and one that does not (37).
    #[test]
    fn default_gate_steps_give_the_general_paths_bits() {
        for (f, u) in [(3, 37), (1, 32), (3, 48), (17, 16), (2, 8)] {
            default_gate_step_matches(f, u);
        }
    }

    fn default_gate_step_matches(f: usize, u: usize) {
        let v = |n: usize, k: f32| -> Vec<f32> {
            (0..n)
                .map(|i| ((i as f32 * 0.61 + k).sin()) * 1.7)
                .collect()
        };
        let leak = |v: Vec<f32>| -> &'static [f32] { Box::leak(v.into_boxed_slice()) };
        let seq = Sequence {
            timesteps: 1,
            features: f,
            return_sequences: true,
            go_backwards: false,
        };
        let x = v(f, 0.3);
        let (sig, th) = (Activation::Sigmoid, Activation::Tanh);

        let g = 4 * u;
        let lstm = Lstm::baked(
            seq,
            u,
            th,
            sig,
            leak(v(f * g, 0.2)),
            leak(v(u * g, 0.4)),
            Some(leak(v(g, 0.5))),
        );
        let mut state = v(2 * u, 0.9);
        let mut want_state = state.clone();
        let mut y = vec![0.0; u];
        lstm.step(&x, true, &mut state, &mut vec![0.0; 5 * u], &mut y);
        let mut z = vec![0.0; g];
        let cell = &lstm.cell;
        let (h, c) = want_state.split_at_mut(u);
        crate::gemm::vec_mat2(
            cell.bias.as_deref(),
            (&x, &cell.kernel),
            (h, &cell.recurrent_kernel),
            &mut z,
        );
        sig.apply(&mut z[..2 * u], u);
        th.apply(&mut z[2 * u..3 * u], u);
        sig.apply(&mut z[3 * u..], u);
        let mut tc = vec![0.0; u];
        for k in 0..u {
            tc[k] = z[k] * z[2 * u + k];
        }
        crate::simd_math::mul_add_in_place(&z[u..2 * u], c, &tc);
        tc.copy_from_slice(c);
        th.apply(&mut tc, u);
        for k in 0..u {
            h[k] = z[3 * u + k] * tc[k];
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&state),
            bits(&want_state),
            "lstm u {u} ({:?})",
            crate::isa::isa()
        );
        assert_eq!(bits(&y), bits(&want_state[..u]));

        let g = 3 * u;
        let gru = Gru::baked(
            seq,
            u,
            th,
            sig,
            true,
            leak(v(f * g, 0.6)),
            leak(v(u * g, 0.7)),
            Some(leak(v(2 * g, 0.8))),
        );
        let mut state = v(u, 0.1);
        let mut want = state.clone();
        gru.step(&x, true, &mut state, &mut vec![0.0; 7 * u], &mut y);
        let cell = &gru.cell;
        let mut p = vec![0.0; g];
        project_step(cell, &x, &mut p);
        let bias = cell.bias.as_deref().map(|b| &b[g..]);
        let mut rec = vec![0.0; g];
        crate::gemm::vec_mat_from(
            bias.unwrap_or(&[]),
            &want,
            &cell.recurrent_kernel,
            g,
            0,
            &mut rec,
        );
        for k in 0..2 * u {
            p[k] += rec[k];
        }
        sig.apply(&mut p[..2 * u], u);
        for k in 0..u {
            p[2 * u + k] += p[u + k] * rec[2 * u + k];
        }
        th.apply(&mut p[2 * u..], u);
        let t: Vec<f32> = (0..u).map(|k| (1.0 - p[k]) * p[2 * u + k]).collect();
        crate::simd_math::mul_add_in_place(&p[..u], &mut want, &t);
        assert_eq!(
            bits(&state),
            bits(&want),
            "gru u {u} ({:?})",
            crate::isa::isa()
        );
        assert_eq!(bits(&y), bits(&want));
    }

    /// Streaming steps (each cell's `step`, with a mask) give the rows of the whole
    /// sequence's `return_sequences` output; the scratch sizes are the macro's formulas
    /// (`macros/src/layers/recurrent.rs`, `Cell::step_len`: 2u, 5u, 7u).
    #[test]
    fn streaming_steps_are_the_rows_of_the_whole_sequence() {
        let (t, f, u) = (6, 2, 3);
        let seq = Sequence {
            timesteps: t,
            features: f,
            return_sequences: true,
            go_backwards: false,
        };
        let v = |n: usize, k: f32| -> Vec<f32> {
            (0..n)
                .map(|i| ((i as f32 * 0.37 + k).sin()) * 0.8)
                .collect()
        };
        let leak = |v: Vec<f32>| -> &'static [f32] { Box::leak(v.into_boxed_slice()) };
        let x = v(t * f, 0.1);
        let mask = [true, false, true, true, false, true];
        type Whole<'a> = &'a dyn Fn(&[f32], Option<&[bool]>, &mut [f32]);
        type Step<'a> = &'a dyn Fn(&[f32], bool, &mut [f32], &mut [f32]);
        let check = |name: &str, forward: Whole, step: Step, state_len: usize| {
            let mut whole = vec![0.0; t * u];
            forward(&x, Some(&mask), &mut whole);
            let mut state = vec![0.0; state_len];
            for s in 0..t {
                let mut y = vec![0.0; u];
                step(&x[s * f..(s + 1) * f], mask[s], &mut state, &mut y);
                for k in 0..u {
                    assert!(
                        (y[k] - whole[s * u + k]).abs() < 1e-6,
                        "{name} step {s}: {y:?} vs {:?}",
                        &whole[s * u..(s + 1) * u]
                    );
                }
            }
        };
        let g = 4 * u;
        let lstm = Lstm::baked(
            seq,
            u,
            Activation::Tanh,
            Activation::Sigmoid,
            leak(v(f * g, 0.2)),
            leak(v(u * g, 0.3)),
            Some(leak(v(g, 0.4))),
        );
        assert_eq!(lstm.step_work_len(), 5 * u);
        check(
            "lstm",
            &|x, m, y| lstm.forward(x, m, y, &mut vec![0.0; lstm.work_len(true)]),
            &|x, keep, s, y| lstm.step(x, keep, s, &mut vec![0.0; 5 * u], y),
            2 * u,
        );
        for reset_after in [true, false] {
            let g = 3 * u;
            let bias = if reset_after { 2 * g } else { g };
            let gru = Gru::baked(
                seq,
                u,
                Activation::Tanh,
                Activation::Sigmoid,
                reset_after,
                leak(v(f * g, 0.5)),
                leak(v(u * g, 0.6)),
                Some(leak(v(bias, 0.7))),
            );
            assert_eq!(gru.step_work_len(), 7 * u);
            check(
                "gru",
                &|x, m, y| gru.forward(x, m, y, &mut vec![0.0; gru.work_len(true)]),
                &|x, keep, s, y| gru.step(x, keep, s, &mut vec![0.0; 7 * u], y),
                u,
            );
        }
        let rnn = SimpleRnn::baked(
            seq,
            u,
            Activation::Tanh,
            leak(v(f * u, 0.8)),
            leak(v(u * u, 0.9)),
            Some(leak(v(u, 1.0))),
        );
        assert_eq!(rnn.step_work_len(), 2 * u);
        check(
            "simple_rnn",
            &|x, m, y| rnn.forward(x, m, y, &mut vec![0.0; rnn.work_len(true)]),
            &|x, keep, s, y| rnn.step(x, keep, s, &mut vec![0.0; 2 * u], y),
            u,
        );
    }
}
