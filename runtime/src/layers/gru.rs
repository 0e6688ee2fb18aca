//! Keras's `GRU`: [`Gru`] is [`Rnn`] around a [`GruCell`]; [`Gru::new`] / [`Gru::baked`]
//! build it, [`Gru::step`] streams it, and [`Rnn::forward`], [`Rnn::forward_train`] and
//! [`Rnn::backward`] run and train it on whole samples.

#[cfg(feature = "alloc")]
use super::recurrent::Grads;
use super::recurrent::{activate, add_outer, mat_vec, vec_mat, Cell, Rnn, Sequence};
use super::Weights;
use crate::activations::Activation;
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::Param;
use crate::simd_math::{mul_add_in_place, sigmoid_with, tanh_with, MulAdd, Unfused, VectorMulAdd};
#[cfg(feature = "alloc")]
use alloc::vec;

/// A gated recurrent unit (Cho 2014), as Keras 3 computes it, gates `z, r, h` in that order:
///
/// `z = recurrent_activation(x_z + h · R_z)`, `r = recurrent_activation(x_r + h · R_r)`,
/// candidate `hh = activation(x_h + r * (h · R_h + b_rh))` with `reset_after` (Keras 3's
/// default) or `activation(x_h + (r * h) · R_h)` without, and `h = z * h + (1 - z) * hh`,
/// where `x_* = x_t · kernel_* + input bias`.
///
/// # Shapes
/// `(timesteps, features)` -> `(units,)`, or `(timesteps, units)` with `return_sequences`.
///
/// # Weights
/// Keras's `gru/gru_cell/...`: `kernel` `(features, 3 * units)`, `recurrent_kernel`
/// `(units, 3 * units)`, `bias` `(2, 3 * units)` with `reset_after` (row 0 the input bias,
/// row 1 the recurrent one) or `(3 * units,)` without; row-major; the fields of [`GruCell`].
///
/// [`Rnn`]'s methods run it on whole samples ([`Rnn::forward`]) and train it
/// ([`Rnn::forward_train`], [`Rnn::backward`]); [`Gru::step`] streams it one timestep at a
/// time.
pub type Gru = Rnn<GruCell>;

/// [`Gru`]'s weights and gate arithmetic (Keras's `GRUCell`).
#[derive(Debug, Clone)]
pub struct GruCell {
    /// `(features, 3 * units)`, row-major.
    pub kernel: Param<[f32]>,
    /// `(units, 3 * units)`, row-major.
    pub recurrent_kernel: Param<[f32]>,
    /// `(2, 3 * units)` or `(3 * units,)`.
    pub bias: Option<Param<[f32]>>,
    units: usize,
    activation: Activation,
    recurrent_activation: Activation,
    reset_after: bool,
}

impl Gru {
    /// A layer initialised from `seed` (kernel from stream `first_weight`, recurrent kernel
    /// the next, bias the one after).
    #[cfg(feature = "alloc")]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sequence: Sequence,
        units: usize,
        activation: Activation,
        recurrent_activation: Activation,
        use_bias: bool,
        reset_after: bool,
        initializers: [Initializer; 3],
        seed: u64,
        first_weight: usize,
    ) -> Self {
        let (f, g) = (sequence.features, 3 * units);
        let mut kernel = vec![0.0; f * g];
        initializers[0].fill(&mut kernel, &[f, g], &mut weight_rng(seed, first_weight));
        let mut recurrent = vec![0.0; units * g];
        initializers[1].fill(
            &mut recurrent,
            &[units, g],
            &mut weight_rng(seed, first_weight + 1),
        );
        let bias = use_bias.then(|| {
            let rng = &mut weight_rng(seed, first_weight + 2);
            let bias = if reset_after {
                let mut bias = vec![0.0; 2 * g];
                initializers[2].fill(&mut bias, &[2, g], rng);
                bias
            } else {
                let mut bias = vec![0.0; g];
                initializers[2].fill(&mut bias, &[g], rng);
                bias
            };
            Param::heap(&bias[..])
        });
        let cell = GruCell {
            kernel: Param::heap(&kernel[..]),
            recurrent_kernel: Param::heap(&recurrent[..]),
            bias,
            units,
            activation,
            recurrent_activation,
            reset_after,
        };
        Rnn { cell, sequence }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`).
    #[allow(clippy::too_many_arguments)]
    pub const fn baked(
        sequence: Sequence,
        units: usize,
        activation: Activation,
        recurrent_activation: Activation,
        reset_after: bool,
        kernel: &'static [f32],
        recurrent_kernel: &'static [f32],
        bias: Option<&'static [f32]>,
    ) -> Self {
        let cell = GruCell {
            kernel: Param::baked(kernel),
            recurrent_kernel: Param::baked(recurrent_kernel),
            bias: match bias {
                Some(b) => Some(Param::baked(b)),
                None => None,
            },
            units,
            activation,
            recurrent_activation,
            reset_after,
        };
        Rnn { cell, sequence }
    }

    /// Scratch [`Gru::step`] needs: the input projection and the recurrent term
    /// (`3 * units` each), and `r * h` without `reset_after`.
    pub fn step_work_len(&self) -> usize {
        7 * self.cell.units
    }

    /// One timestep for streaming (`kiln::Streaming`): `x` the timestep's features, `keep`
    /// its mask, `state` ([`Rnn::state_len`] values, zeros at the start) carried between
    /// calls, `y` the output `h`. The numbers of [`super::recurrent::stream_step`], with
    /// each activation on its gates where they lie (no copies).
    #[inline(always)]
    pub fn step(&self, x: &[f32], keep: bool, state: &mut [f32], work: &mut [f32], y: &mut [f32]) {
        let cell = &self.cell;
        let u = cell.units;
        let g = 3 * u;
        let defaults = cell.reset_after
            && matches!(
                (cell.recurrent_activation, cell.activation),
                (Activation::Sigmoid, Activation::Tanh)
            );
        #[cfg(target_arch = "x86_64")]
        if keep && defaults {
            use crate::isa::Isa;
            let (h, y) = (&mut state[..u], &mut y[..u]);
            match crate::isa::isa() {
                // SAFETY: the CPU has AVX-512F (`crate::isa`); 16 lanes divide `g`.
                Isa::Avx512 if g.is_multiple_of(16) => unsafe {
                    return fused_step_avx512(cell, x, h, work, y);
                },
                // SAFETY: the CPU has AVX2 and FMA (`crate::isa`); 8 lanes divide `g`.
                Isa::Avx2Fma if g.is_multiple_of(8) => unsafe {
                    return fused_step_avx2(cell, x, h, work, y);
                },
                _ => {}
            }
        }
        if keep {
            let (p, rest) = work.split_at_mut(g);
            let (rec, rest) = rest.split_at_mut(g);
            let rh = &mut rest[..u];
            super::recurrent::project_step(cell, x, p);
            let h = &mut state[..u];
            let r_kernel: &[f32] = &cell.recurrent_kernel;
            let width = if cell.reset_after { g } else { 2 * u };
            match cell.recurrent_bias() {
                Some(b) => crate::gemm::vec_mat_from(b, h, r_kernel, g, 0, &mut rec[..width]),
                None => vec_mat(h, r_kernel, g, 0, 0.0, &mut rec[..width]),
            }
            if defaults {
                // Keras's default gates in one pass over the units, the values staying in
                // registers: the same functions on the same values in the same order as
                // the general path below, with the multiply-adds rounded as the slice
                // kernels round them on this instruction set (same bits), vectorised for
                // the instruction set of the code this is inlined into
                // (`crate::isa::dispatch`).
                let y = &mut y[..u];
                if crate::isa::isa().fuses_multiply_add() {
                    default_gates::<VectorMulAdd>(p, rec, h, y);
                } else {
                    default_gates::<Unfused>(p, rec, h, y);
                }
                return;
            }
            // z and r: into `p`'s first two thirds, in place.
            for k in 0..2 * u {
                p[k] += rec[k];
            }
            cell.recurrent_activation.apply(&mut p[..2 * u], u);
            let (zr, ph) = p.split_at_mut(2 * u);
            let (z, r) = zr.split_at(u);
            if cell.reset_after {
                for k in 0..u {
                    ph[k] += r[k] * rec[2 * u + k];
                }
            } else {
                for k in 0..u {
                    rh[k] = r[k] * h[k];
                }
                vec_mat(rh, r_kernel, g, 2 * u, 1.0, ph);
            }
            cell.activation.apply(ph, u);
            for k in 0..u {
                ph[k] *= 1.0 - z[k];
            }
            mul_add_in_place(z, h, ph);
        }
        y[..u].copy_from_slice(&state[..u]);
    }
}

impl GruCell {
    /// The bias of the recurrent projection (`reset_after`): row 1 of `bias`.
    fn recurrent_bias(&self) -> Option<&[f32]> {
        match &self.bias {
            Some(b) if self.reset_after => Some(&b[3 * self.units..]),
            _ => None,
        }
    }
}

/// `h = z h + (1 - z) hh` with `z = sigmoid(p_z + rec_z)`, `r = sigmoid(p_r + rec_r)`,
/// `hh = tanh(p_h + r rec_h)` (`reset_after`, Keras's default activations): `p` the input
/// projection, `rec` the recurrent one, `h.len()` units per gate; `y` gets `h` too.
#[inline(always)]
fn default_gates<A: MulAdd>(p: &[f32], rec: &[f32], h: &mut [f32], y: &mut [f32]) {
    let u = h.len();
    let (pz, rest) = p.split_at(u);
    let (pr, ph) = rest.split_at(u);
    let (rz, rest) = rec.split_at(u);
    let (rr, rh) = rest.split_at(u);
    let zs = pz.iter().zip(rz);
    let rs = pr.iter().zip(rr);
    let hs = ph.iter().zip(&rh[..u]);
    for ((h, y), ((z, r), hh)) in h.iter_mut().zip(y.iter_mut()).zip(zs.zip(rs).zip(hs)) {
        let z = sigmoid_with::<A>(z.0 + z.1);
        let r = sigmoid_with::<A>(r.0 + r.1);
        let hh = tanh_with::<A>(hh.0 + r * hh.1);
        *h = A::mul_add(z, *h, (1.0 - z) * hh);
        *y = *h;
    }
}

/// [`Gru::step`] with the default gates in one function compiled for an instruction set:
/// both projections' sums in registers, six (then three) vectors of gates at a time,
/// stored once, then [`default_gates`]. The same operations in the same order as the path
/// through `vec_mat` (so the same bits), without its calls, checks and the stores and loads
/// between them, which cost an eighth of a GRU(1 -> 32) step (BENCHMARKS.md, "Streaming RNN
/// step").
macro_rules! fused_step {
    ($name:ident, $feature:literal, $sums:ident, $store:ident, $lanes:literal) => {
        /// See the macro.
        ///
        /// # Safety
        /// The CPU has the instruction set; `3 * h.len()` is the cell's gate count and a
        /// multiple of the vector width; `work` holds at least twice that.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name(cell: &GruCell, x: &[f32], h: &mut [f32], work: &mut [f32], y: &mut [f32]) {
            use crate::gemm::{$store as store, $sums as sums, Rows};
            let g = 3 * h.len();
            let (p, rest) = work.split_at_mut(g);
            let rec = &mut rest[..g];
            {
                let input = [Rows::new(x, &cell.kernel, g, g)];
                let recurrent = [Rows::new(h, &cell.recurrent_kernel, g, g)];
                let (b_in, b_rec) = (cell.input_bias(), cell.recurrent_bias());
                let mut j0 = 0;
                // SAFETY: the instruction set (the caller's); `Rows::new` checked every
                // row's `g` columns, the biases hold `g` values, and each block's columns
                // `j0..j0 + lanes V` lie within `g` (a multiple of three vectors), as do the
                // stores into `p` and `rec` (`g` values each).
                unsafe {
                    while g - j0 >= 6 * $lanes {
                        store(sums::<6>(b_in, &input, j0), p, j0);
                        store(sums::<6>(b_rec, &recurrent, j0), rec, j0);
                        j0 += 6 * $lanes;
                    }
                    if j0 < g {
                        store(sums::<3>(b_in, &input, j0), p, j0);
                        store(sums::<3>(b_rec, &recurrent, j0), rec, j0);
                    }
                }
            }
            default_gates::<VectorMulAdd>(p, rec, h, y);
        }
    };
}

fused_step!(
    fused_step_avx512,
    "avx512f,avx2,fma",
    sums_avx512,
    store_avx512,
    16
);
fused_step!(fused_step_avx2, "avx2,fma", sums_avx2, store_avx2, 8);

impl Cell for GruCell {
    fn units(&self) -> usize {
        self.units
    }
    fn gates(&self) -> usize {
        3 * self.units
    }
    fn state_len(&self) -> usize {
        self.units
    }
    fn step_cache_len(&self) -> usize {
        7 * self.units
    }
    fn step_work_len(&self) -> usize {
        10 * self.units
    }
    fn kernel(&self) -> &[f32] {
        &self.kernel
    }
    fn recurrent_kernel(&self) -> &[f32] {
        &self.recurrent_kernel
    }
    fn input_bias(&self) -> Option<&[f32]> {
        self.bias.as_deref().map(|b| &b[..3 * self.units])
    }
    #[cfg(feature = "alloc")]
    fn grads<'a>(&self, grads: &'a mut [alloc::vec::Vec<f32>]) -> Grads<'a> {
        let g = 3 * self.units;
        let (kernel, rest) = grads.split_at_mut(1);
        let (recurrent, bias) = rest.split_at_mut(1);
        let (input_bias, recurrent_bias) = match bias.first_mut() {
            Some(b) if self.reset_after => {
                let (i, r) = b.split_at_mut(g);
                (Some(i), Some(r))
            }
            Some(b) => (Some(&mut b[..]), None),
            None => (None, None),
        };
        Grads {
            kernel: &mut kernel[0],
            recurrent: &mut recurrent[0],
            input_bias,
            recurrent_bias,
        }
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
        let g = 3 * u;
        let (rec, work) = work.split_at_mut(g);
        // Layout (cache or scratch): pre-activations (3u), z, r, hh (3u), and the recurrent
        // term of the candidate (u): `h · R_h + b_rh` with `reset_after`, `r * h` without.
        let buf = match cache {
            Some(cache) => cache,
            None => work,
        };
        let (pre, rest) = buf.split_at_mut(g);
        let (post, rest) = rest.split_at_mut(g);
        let rh = &mut rest[..u];
        let h = state;
        let r_kernel = recurrent;
        if self.reset_after {
            vec_mat(h, r_kernel, g, 0, 0.0, rec);
            if let Some(b) = self.recurrent_bias() {
                for (v, b) in rec.iter_mut().zip(b) {
                    *v += b;
                }
            }
        } else {
            vec_mat(h, r_kernel, g, 0, 0.0, &mut rec[..2 * u]);
        }
        for k in 0..2 * u {
            pre[k] = p[k] + rec[k];
        }
        activate(self.recurrent_activation, &pre[..u], &mut post[..u]);
        activate(
            self.recurrent_activation,
            &pre[u..2 * u],
            &mut post[u..2 * u],
        );
        if self.reset_after {
            rh.copy_from_slice(&rec[2 * u..]);
            for k in 0..u {
                pre[2 * u + k] = p[2 * u + k] + post[u + k] * rh[k];
            }
        } else {
            for k in 0..u {
                rh[k] = post[u + k] * h[k];
            }
            pre[2 * u..].copy_from_slice(&p[2 * u..g]);
            vec_mat(rh, r_kernel, g, 2 * u, 1.0, &mut pre[2 * u..]);
        }
        activate(self.activation, &pre[2 * u..], &mut post[2 * u..]);
        // `h = z h + (1 - z) hh`, the multiply-add rounded as the streaming step rounds it.
        let t = &mut rec[..u];
        for k in 0..u {
            t[k] = (1.0 - post[k]) * post[2 * u + k];
        }
        mul_add_in_place(&post[..u], h, t);
    }

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
    ) {
        let u = self.units;
        let g = 3 * u;
        let (pre, rest) = cache.split_at(g);
        let (post, rest) = rest.split_at(g);
        let rh = &rest[..u];
        let h_prev = prev;
        let dh = dstate;
        let (drec, work) = work.split_at_mut(g);
        let d_rh = &mut work[..u];
        // h = z * h_prev + (1 - z) * hh.
        for k in 0..u {
            let (z, hh) = (post[k], post[2 * u + k]);
            dp[k] = dh[k] * (h_prev[k] - hh);
            dp[2 * u + k] = dh[k] * (1.0 - z);
            dh[k] *= z;
        }
        self.activation
            .backward(&pre[2 * u..], &post[2 * u..], &mut dp[2 * u..g], u);
        if self.reset_after {
            // pre_hh = x_h + r * rh.
            for k in 0..u {
                dp[u + k] = dp[2 * u + k] * rh[k];
                drec[2 * u + k] = dp[2 * u + k] * post[u + k];
            }
        } else {
            // pre_hh = x_h + rh · R_h with rh = r * h_prev.
            add_outer(rh, &dp[2 * u..g], grad_recurrent, g, 2 * u);
            mat_vec(recurrent, g, 2 * u, &dp[2 * u..g], 0.0, d_rh);
            for k in 0..u {
                dp[u + k] = d_rh[k] * h_prev[k];
                dh[k] += d_rh[k] * post[u + k];
            }
        }
        let rec = self.recurrent_activation;
        rec.backward(&pre[..u], &post[..u], &mut dp[..u], u);
        rec.backward(&pre[u..2 * u], &post[u..2 * u], &mut dp[u..2 * u], u);
        drec[..2 * u].copy_from_slice(&dp[..2 * u]);
        let width = if self.reset_after { g } else { 2 * u };
        add_outer(h_prev, &drec[..width], grad_recurrent, g, 0);
        mat_vec(recurrent, g, 0, &drec[..width], 1.0, dh);
        if let Some(grad_bias) = grad_bias {
            for (b, d) in grad_bias.iter_mut().zip(&drec[..]) {
                *b += d;
            }
        }
    }
}

impl Weights for GruCell {
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
