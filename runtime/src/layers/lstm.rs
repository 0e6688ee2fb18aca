//! Keras's `LSTM`: [`Lstm`] is [`Rnn`] around an [`LstmCell`]; [`Lstm::new`] /
//! [`Lstm::baked`] build it, [`Lstm::step`] streams it, and [`Rnn::forward`],
//! [`Rnn::forward_train`] and [`Rnn::backward`] run and train it on whole samples.

use super::recurrent::{activate, add_outer, mat_vec, vec_mat, Cell, Rnn, Sequence};
use super::Weights;
use crate::activations::Activation;
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::Param;
use crate::simd_math::{mul_add_in_place, sigmoid_with, tanh_with, MulAdd, Unfused, VectorMulAdd};
#[cfg(feature = "alloc")]
use alloc::vec;

/// A long short-term memory layer (Hochreiter 1997), as Keras 3 computes it:
///
/// `z = x_t · kernel + h · recurrent_kernel + bias`, split into gates `i, f, c, o` (that
/// order); `i, f, o = recurrent_activation(..)`, `g = activation(z_c)`,
/// `c = f * c + i * g`, `h = o * activation(c)`. The output is `h` (every step's with
/// `return_sequences`).
///
/// # Shapes
/// `(timesteps, features)` -> `(units,)`, or `(timesteps, units)` with `return_sequences`.
///
/// # Weights
/// Keras's `lstm/lstm_cell/...`: `kernel` `(features, 4 * units)`, `recurrent_kernel`
/// `(units, 4 * units)`, `bias` `(4 * units,)` when `use_bias`; row-major, gates `i, f, c, o`
/// along the last axis; the fields of [`LstmCell`].
///
/// [`Rnn`]'s methods run it on whole samples ([`Rnn::forward`]) and train it
/// ([`Rnn::forward_train`], [`Rnn::backward`]); [`Lstm::step`] streams it one timestep at a
/// time.
pub type Lstm = Rnn<LstmCell>;

/// [`Lstm`]'s weights and gate arithmetic (Keras's `LSTMCell`).
#[derive(Debug, Clone)]
pub struct LstmCell {
    /// `(features, 4 * units)`, row-major.
    pub kernel: Param<[f32]>,
    /// `(units, 4 * units)`, row-major.
    pub recurrent_kernel: Param<[f32]>,
    /// `(4 * units,)`.
    pub bias: Option<Param<[f32]>>,
    units: usize,
    activation: Activation,
    recurrent_activation: Activation,
}

impl Lstm {
    /// A layer initialised from `seed` (kernel from stream `first_weight`, recurrent kernel
    /// the next, bias the one after). `unit_forget_bias` sets the forget gate's bias to 1 and
    /// fills the rest with `bias_initializer`, as Keras does.
    #[cfg(feature = "alloc")]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sequence: Sequence,
        units: usize,
        activation: Activation,
        recurrent_activation: Activation,
        use_bias: bool,
        unit_forget_bias: bool,
        initializers: [Initializer; 3],
        seed: u64,
        first_weight: usize,
    ) -> Self {
        let (f, g) = (sequence.features, 4 * units);
        let mut kernel = vec![0.0; f * g];
        initializers[0].fill(&mut kernel, &[f, g], &mut weight_rng(seed, first_weight));
        let mut recurrent = vec![0.0; units * g];
        initializers[1].fill(
            &mut recurrent,
            &[units, g],
            &mut weight_rng(seed, first_weight + 1),
        );
        let bias = use_bias.then(|| {
            let mut bias = vec![0.0; g];
            let rng = &mut weight_rng(seed, first_weight + 2);
            if unit_forget_bias {
                // Keras: concatenate(init((units,)), ones((units,)), init((2 * units,))).
                initializers[2].fill(&mut bias[..units], &[units], rng);
                bias[units..2 * units].fill(1.0);
                initializers[2].fill(&mut bias[2 * units..], &[2 * units], rng);
            } else {
                initializers[2].fill(&mut bias, &[g], rng);
            }
            Param::heap(&bias[..])
        });
        let cell = LstmCell {
            kernel: Param::heap(&kernel[..]),
            recurrent_kernel: Param::heap(&recurrent[..]),
            bias,
            units,
            activation,
            recurrent_activation,
        };
        Rnn { cell, sequence }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`).
    pub const fn baked(
        sequence: Sequence,
        units: usize,
        activation: Activation,
        recurrent_activation: Activation,
        kernel: &'static [f32],
        recurrent_kernel: &'static [f32],
        bias: Option<&'static [f32]>,
    ) -> Self {
        let cell = LstmCell {
            kernel: Param::baked(kernel),
            recurrent_kernel: Param::baked(recurrent_kernel),
            bias: match bias {
                Some(b) => Some(Param::baked(b)),
                None => None,
            },
            units,
            activation,
            recurrent_activation,
        };
        Rnn { cell, sequence }
    }

    /// Scratch [`Lstm::step`] needs: the pre-activations (`4 * units`) and `act(c)`.
    pub fn step_work_len(&self) -> usize {
        5 * self.cell.units
    }

    /// One timestep for streaming (`kiln::Streaming`): `x` the timestep's features, `keep`
    /// its mask, `state` ([`Rnn::state_len`] values, `h` then `c`, zeros at the start)
    /// carried between calls, `y` the output `h`. The numbers of
    /// [`super::recurrent::stream_step`] with the gates computed in place: the projection
    /// and the recurrent product go into one buffer, and each activation runs on its gates
    /// where they lie (no copies; this is the real-time audio step).
    #[inline(always)]
    pub fn step(&self, x: &[f32], keep: bool, state: &mut [f32], work: &mut [f32], y: &mut [f32]) {
        let cell = &self.cell;
        let u = cell.units;
        let g = 4 * u;
        let (rec, act) = (cell.recurrent_activation, cell.activation);
        let defaults = matches!((rec, act), (Activation::Sigmoid, Activation::Tanh));
        #[cfg(target_arch = "x86_64")]
        if keep && defaults {
            use crate::isa::Isa;
            let (h, c) = state.split_at_mut(u);
            let (c, y) = (&mut c[..u], &mut y[..u]);
            match crate::isa::isa() {
                // SAFETY: the CPU has AVX-512F (`crate::isa`); 16 lanes divide `g`.
                Isa::Avx512 if g.is_multiple_of(16) => unsafe {
                    return fused_step_avx512(cell, x, h, c, work, y);
                },
                // SAFETY: the CPU has AVX2 and FMA (`crate::isa`); 8 lanes divide `g`.
                Isa::Avx2Fma if g.is_multiple_of(8) => unsafe {
                    return fused_step_avx2(cell, x, h, c, work, y);
                },
                _ => {}
            }
        }
        if keep {
            let (z, rest) = work.split_at_mut(g);
            let tc = &mut rest[..u];
            let (h, c) = state.split_at_mut(u);
            // `bias + x · kernel + h · recurrent_kernel` in one pass.
            crate::gemm::vec_mat2(
                cell.bias.as_deref(),
                (x, &cell.kernel),
                (h, &cell.recurrent_kernel),
                z,
            );
            if defaults {
                // Keras's default gates in one pass over the units, the values staying in
                // registers: the same functions, applied to the same values in the same
                // order as the general path below, with the multiply-adds rounded as the
                // slice kernels round them on this instruction set, so the same bits; and
                // vectorised for the instruction set of the code this is inlined into
                // (`predict` and `Streaming::step` run on the CPU's best one,
                // `crate::isa::dispatch`).
                let y = &mut y[..u];
                if crate::isa::isa().fuses_multiply_add() {
                    default_gates::<VectorMulAdd>(z, h, c, y);
                } else {
                    default_gates::<Unfused>(z, h, c, y);
                }
                return;
            }
            rec.apply(&mut z[..2 * u], u);
            act.apply(&mut z[2 * u..3 * u], u);
            rec.apply(&mut z[3 * u..], u);
            let (i, rest) = z.split_at(u);
            let (f, rest) = rest.split_at(u);
            let (gc, o) = rest.split_at(u);
            for k in 0..u {
                tc[k] = i[k] * gc[k];
            }
            mul_add_in_place(f, c, tc);
            tc.copy_from_slice(c);
            act.apply(tc, u);
            for k in 0..u {
                h[k] = o[k] * tc[k];
            }
        }
        y[..u].copy_from_slice(&state[..u]);
    }
}

/// `c = f c + i g`, `h = o tanh(c)` from the pre-activations `z` (`i, f, c, o`, `h.len()`
/// units each), with Keras's default activations (sigmoid gates, tanh); `y` gets `h` too.
#[inline(always)]
fn default_gates<A: MulAdd>(z: &[f32], h: &mut [f32], c: &mut [f32], y: &mut [f32]) {
    let u = h.len();
    let (i, rest) = z.split_at(u);
    let (f, rest) = rest.split_at(u);
    let (gc, o) = rest.split_at(u);
    let gates = i.iter().zip(f).zip(gc).zip(o);
    let states = c.iter_mut().zip(h.iter_mut()).zip(y.iter_mut());
    for (((c, h), y), (((&i, &f), &gc), &o)) in states.zip(gates) {
        *c = A::mul_add(
            sigmoid_with::<A>(f),
            *c,
            sigmoid_with::<A>(i) * tanh_with::<A>(gc),
        );
        *h = sigmoid_with::<A>(o) * tanh_with::<A>(*c);
        *y = *h;
    }
}

/// [`Lstm::step`] with the default gates in one function compiled for an instruction set:
/// the sums of `bias + x · kernel + h · recurrent_kernel` in registers, eight (then four,
/// two, one) vectors of gates at a time, stored once, then [`default_gates`]. The same
/// operations in the same order as the path through `vec_mat2` (so the same bits), without
/// its call, checks and dispatch.
macro_rules! fused_step {
    ($name:ident, $feature:literal, $sums:ident, $store:ident, $lanes:literal) => {
        /// See the macro.
        ///
        /// # Safety
        /// The CPU has the instruction set; `4 * h.len()` is the cell's gate count and a
        /// multiple of the vector width; `c` holds `h.len()` values and `work` at least
        /// `4 * h.len()`.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name(
            cell: &LstmCell,
            x: &[f32],
            h: &mut [f32],
            c: &mut [f32],
            work: &mut [f32],
            y: &mut [f32],
        ) {
            use crate::gemm::{$store as store, $sums as sums, Rows};
            let g = 4 * h.len();
            let z = &mut work[..g];
            {
                let parts = [
                    Rows::new(x, &cell.kernel, g, g),
                    Rows::new(h, &cell.recurrent_kernel, g, g),
                ];
                let bias = cell.bias.as_deref();
                let mut j0 = 0;
                // SAFETY: the instruction set (the caller's); `Rows::new` checked every
                // row's `g` columns, the bias holds `g` values, and each block's columns
                // `j0..j0 + lanes V` lie within `g` (a multiple of a vector), as do the
                // stores into `z`.
                unsafe {
                    while g - j0 >= 8 * $lanes {
                        store(sums::<8>(bias, &parts, j0), z, j0);
                        j0 += 8 * $lanes;
                    }
                    if g - j0 >= 4 * $lanes {
                        store(sums::<4>(bias, &parts, j0), z, j0);
                        j0 += 4 * $lanes;
                    }
                    if g - j0 >= 2 * $lanes {
                        store(sums::<2>(bias, &parts, j0), z, j0);
                        j0 += 2 * $lanes;
                    }
                    if g - j0 >= $lanes {
                        store(sums::<1>(bias, &parts, j0), z, j0);
                    }
                }
            }
            default_gates::<VectorMulAdd>(z, h, c, y);
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

impl Cell for LstmCell {
    fn units(&self) -> usize {
        self.units
    }
    fn gates(&self) -> usize {
        4 * self.units
    }
    fn state_len(&self) -> usize {
        2 * self.units
    }
    fn step_cache_len(&self) -> usize {
        10 * self.units
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
        let g = 4 * u;
        // Layout (cache or scratch): pre-activations z (4u), gates (4u), c (u), act(c) (u).
        let buf = match cache {
            Some(cache) => cache,
            None => work,
        };
        let (z, rest) = buf.split_at_mut(g);
        let (gates, rest) = rest.split_at_mut(g);
        let (c_new, rest) = rest.split_at_mut(u);
        let tc = &mut rest[..u];
        z.copy_from_slice(&p[..g]);
        let (h, c) = state.split_at_mut(u);
        vec_mat(h, recurrent, g, 0, 1.0, z);
        let rec = self.recurrent_activation;
        activate(rec, &z[..u], &mut gates[..u]);
        activate(rec, &z[u..2 * u], &mut gates[u..2 * u]);
        activate(self.activation, &z[2 * u..3 * u], &mut gates[2 * u..3 * u]);
        activate(rec, &z[3 * u..], &mut gates[3 * u..]);
        for k in 0..u {
            c_new[k] = gates[k] * gates[2 * u + k];
        }
        // `c = f c + i g`, the multiply-add rounded as the streaming step rounds it.
        mul_add_in_place(&gates[u..2 * u], c, c_new);
        c_new.copy_from_slice(c);
        activate(self.activation, c, tc);
        for k in 0..u {
            h[k] = gates[3 * u + k] * tc[k];
        }
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
        let g = 4 * u;
        let (z, rest) = cache.split_at(g);
        let (gates, rest) = rest.split_at(g);
        let (c, tc) = rest.split_at(u);
        let (h_prev, c_prev) = prev.split_at(u);
        let (dh, dc) = dstate.split_at_mut(u);
        let dtc = &mut work[..u];
        // h = o * tc: do, then dc += act'(c) * (dh * o).
        for k in 0..u {
            dtc[k] = dh[k] * gates[3 * u + k];
            dp[3 * u + k] = dh[k] * tc[k];
        }
        self.activation.backward(c, tc, dtc, u);
        for k in 0..u {
            let dct = dc[k] + dtc[k];
            dp[k] = dct * gates[2 * u + k];
            dp[u + k] = dct * c_prev[k];
            dp[2 * u + k] = dct * gates[k];
            dc[k] = dct * gates[u + k];
        }
        let rec = self.recurrent_activation;
        rec.backward(&z[..u], &gates[..u], &mut dp[..u], u);
        rec.backward(&z[u..2 * u], &gates[u..2 * u], &mut dp[u..2 * u], u);
        self.activation.backward(
            &z[2 * u..3 * u],
            &gates[2 * u..3 * u],
            &mut dp[2 * u..3 * u],
            u,
        );
        rec.backward(&z[3 * u..], &gates[3 * u..], &mut dp[3 * u..g], u);
        add_outer(h_prev, &dp[..g], grad_recurrent, g, 0);
        mat_vec(recurrent, g, 0, &dp[..g], 0.0, dh);
    }
}

impl Weights for LstmCell {
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
