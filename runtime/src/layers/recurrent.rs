//! The recurrence shared by `SimpleRNN`, `LSTM` and `GRU`: [`Sequence::forward`] runs a
//! [`Cell`] over whole samples (inference and training), [`Sequence::backward`] is
//! backpropagation through time. Each layer's file holds only its cell.
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
    /// One step: `p` is the timestep's input projection (with the input bias); turns `state`
    /// into the new state. `cache` (training) receives `step_cache_len` values.
    fn step(&self, p: &[f32], state: &mut [f32], work: &mut [f32], cache: Option<&mut [f32]>);
    /// The step's backward pass: `dstate` holds the gradient with respect to the new state
    /// and becomes the one with respect to `prev` (the state before the step); `dp` receives
    /// the gradient with respect to `p` (overwritten); recurrent weight gradients are added
    /// to `grads` (`grads[0]` the recurrent kernel, `grads[1]` the bias when the cell has a
    /// recurrent bias term).
    #[allow(clippy::too_many_arguments)]
    fn step_backward(
        &self,
        cache: &[f32],
        prev: &[f32],
        dstate: &mut [f32],
        dp: &mut [f32],
        grad_recurrent: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        work: &mut [f32],
    );
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
pub(crate) fn vec_mat(h: &[f32], w: &[f32], cols: usize, col0: usize, beta: f32, out: &mut [f32]) {
    let (units, width) = (h.len(), out.len());
    gemm(
        1.0,
        &w[col0..],
        Strided {
            rows: width,
            cols: units,
            row_stride: 1,
            col_stride: cols,
        },
        h,
        Strided::column_major(units, 1),
        beta,
        out,
        Strided::column_major(width, 1),
    );
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

    /// The layer on whole samples: `x` row-major `(timesteps, features)` each, `mask` one
    /// `bool` per timestep of each sample (`true` = keep), `y` the outputs. `work` holds at
    /// least `work_len(cell, false)` values; with `work_len(cell, true)` the input
    /// projections are one GEMM per sample. `cache` (training) receives `cache_len` values
    /// per sample.
    pub fn forward(
        &self,
        cell: &impl Cell,
        x: &[f32],
        mask: Option<&[bool]>,
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
        let precompute = work.len() >= self.work_len(cell, true);
        let (proj, rest) = work.split_at_mut(if precompute { t_len * g } else { g });
        let (state, step_work) = rest.split_at_mut(s_len);
        let out_len = self.output_len(u);
        let samples = x.len() / in_len;
        for n in 0..samples {
            let xs = &x[n * in_len..(n + 1) * in_len];
            let ys = &mut y[n * out_len..(n + 1) * out_len];
            if precompute {
                self.project(cell, xs, t_len, proj);
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
                        self.project(cell, &xs[t * f..(t + 1) * f], 1, proj);
                        proj
                    };
                    let step_cache = cache.as_deref_mut().map(|cache| {
                        let at = (n * t_len + s) * (s_len + c_len) + s_len;
                        &mut cache[at..at + c_len]
                    });
                    cell.step(p, state, step_work, step_cache);
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
    fn project(&self, cell: &impl Cell, x: &[f32], steps: usize, out: &mut [f32]) {
        let (f, g) = (self.features, cell.gates());
        gemm(
            1.0,
            cell.kernel(),
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

    /// Backpropagation through time over whole samples. `x`, `mask` and `cache` as the
    /// training forward pass saw them, `dy` the gradient with respect to its output.
    /// `dp` is scratch of `timesteps * gates` per sample (the gradients with respect to the
    /// input projections), `work` of `state_len + step_work_len` values. Adds the weight
    /// gradients: `grads.kernel` `(features, gates)`, `grads.recurrent` `(units, gates)`,
    /// `grads.input_bias` and `grads.recurrent_bias` (each cell says how its bias splits);
    /// writes the input gradient into `dx` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        cell: &impl Cell,
        x: &[f32],
        mask: Option<&[bool]>,
        cache: &[f32],
        dy: &[f32],
        dp: &mut [f32],
        work: &mut [f32],
        grads: Grads<'_>,
        dx: Option<&mut [f32]>,
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
                    dstate,
                    &mut dps[t * g..(t + 1) * g],
                    grad_recurrent,
                    recurrent_bias.as_deref_mut(),
                    step_work,
                );
            }
        }
        let columns = samples * t_len;
        // kernel (features x gates, row-major = gates x features column-major) += dpᵀ-ish:
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
        if let Some(grad_bias) = grad_input_bias {
            for row in dp.chunks_exact(g) {
                for (b, d) in grad_bias.iter_mut().zip(row) {
                    *b += d;
                }
            }
        }
        if let Some(dx) = dx {
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
}
