//! One streaming step of LSTM(1 -> 32) + Dense(1) and of GRU(1 -> 32) + Dense(1), the
//! workload of issue 10 (an audio model run one sample at a time).
//!
//! Each cell is written by hand on the same nalgebra static matrices and weights, three
//! ways: `f32::tanh` and `f32::exp` once per value with nalgebra's matrix-vector product
//! (the baseline the issue describes); the same with kiln's vectorised
//! `simd_math::tanh_in_place` / `sigmoid_in_place`; and those with kiln's `gemm` for the
//! recurrent product, which, like the activations, picks AVX2 or AVX-512 at run time where
//! nalgebra's product is compiled for the build's target. Before timing, each runs 10,000
//! steps beside a double-precision reference of the same cell, and the bench prints its
//! largest output deviation from it, so each figure comes with the accuracy it was bought
//! at.
//!
//! Beside them, the kiln row: the same network written as a `kiln::model!`
//! (`Input(shape = (None, 1)), LSTM(32, return_sequences = True), Dense(1)`, and the GRU's
//! twin) with the same weights set by their Keras names, run through `Streaming::step`.
//!
//! A third group, `activations`, times the two functions alone over 32 and 1,024 values.
//!
//! The state carries over from one timed step to the next, as in streaming use; the input
//! cycles through a fixed signal. Keras's weight layouts and gate orders: LSTM kernel
//! (1, 4u) and recurrent kernel (u, 4u) with gates i, f, c, o; GRU (Keras 3 default,
//! `reset_after = True`) kernel (1, 3u), recurrent kernel (u, 3u), bias (2, 3u) with gates
//! z, r, h and `h' = z h + (1 - z) tanh(x_h + r (U_h h + b_rh))`.
//!
//! Run with `cargo bench --bench rnn_step` (default build) and
//! `RUSTFLAGS="-C target-cpu=native" cargo bench --bench rnn_step`; results are in
//! BENCHMARKS.md ("Streaming RNN step"). With `RNN_STEP_DUMP=<dir>` it also writes the kiln
//! row's weights, input and outputs for the RTNeural harness (`benches/rtneural/run.sh`)
//! and times that row the harness's way.

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion};
use kiln::gemm::{gemm, Strided};
use kiln::simd_math::{sigmoid_in_place, tanh_in_place};
use kiln::{Model, Streaming};
use nalgebra::{SMatrix, SVector};
use std::hint::black_box;
use std::time::Duration;

const U: usize = 32;
// The variants of a hand-written cell (its `V` parameter).
/// `f32::tanh` and `f32::exp` one value at a time, nalgebra's matrix-vector product.
const SCALAR: u8 = 0;
/// kiln's `tanh_in_place` / `sigmoid_in_place`, nalgebra's product.
const SIMD_MATH: u8 = 1;
/// kiln's activations and kiln's `gemm` for the recurrent product, which picks its kernel
/// at run time as the activations do (AVX-512 here even in the default build), where
/// nalgebra's product is compiled for the build's target (SSE2 by default).
const SIMD_GEMM: u8 = 2;
const U3: usize = 3 * U;
const U4: usize = 4 * U;
/// Steps of the accuracy check against the double-precision reference.
const CHECK_STEPS: usize = 10_000;

/// Deterministic values in [-1, 1) (a 64-bit LCG), so runs are comparable.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Glorot-uniform-sized values (Keras's default kernel initializer) for a `(fan_in,
/// fan_out)` kernel, row-major as Keras stores it.
fn glorot(fan_in: usize, fan_out: usize, seed: u64) -> Vec<f64> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    values(fan_in * fan_out, seed)
        .into_iter()
        .map(|v| v * limit)
        .collect()
}

/// The input signal: two sines and a little noise, in [-1, 1].
fn signal(n: usize) -> Vec<f64> {
    let noise = values(n, 99);
    (0..n)
        .map(|t| {
            let t = t as f64;
            0.6 * (0.031 * t).sin() + 0.3 * (0.17 * t).sin() + 0.1 * noise[t as usize]
        })
        .collect()
}

fn sigmoid_scalar(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Keras-layout weights of LSTM(1 -> 32) + Dense(1), in `f64`.
struct LstmKeras {
    kernel: Vec<f64>,    // (1, 4u)
    recurrent: Vec<f64>, // (u, 4u)
    bias: Vec<f64>,      // (4u,)
    dense: Vec<f64>,     // (u, 1)
    dense_bias: f64,
}

impl LstmKeras {
    fn new() -> Self {
        // Keras's `unit_forget_bias`: the forget gate's bias starts at 1.
        let mut bias = values(U4, 3).iter().map(|v| 0.1 * v).collect::<Vec<_>>();
        bias[U..2 * U].iter_mut().for_each(|b| *b += 1.0);
        LstmKeras {
            kernel: glorot(1, U4, 1),
            recurrent: values(U * U4, 2).iter().map(|v| 0.25 * v).collect(),
            bias,
            dense: glorot(U, 1, 4),
            dense_bias: 0.05,
        }
    }
}

/// The LSTM step in `f32` on nalgebra static matrices; `V` picks the variant.
struct Lstm<const V: u8> {
    /// The kernel as a column (input dim 1).
    kernel: SVector<f32, U4>,
    /// The recurrent kernel transposed, `4u x u`, so `z = recurrentᵀ h` is one product.
    recurrent_t: SMatrix<f32, U4, U>,
    bias: SVector<f32, U4>,
    dense: SVector<f32, U>,
    dense_bias: f32,
    h: SVector<f32, U>,
    c: SVector<f32, U>,
}

impl<const V: u8> Lstm<V> {
    fn new(k: &LstmKeras) -> Self {
        Lstm {
            kernel: SVector::from_fn(|j, _| k.kernel[j] as f32),
            recurrent_t: SMatrix::from_fn(|j, i| k.recurrent[i * U4 + j] as f32),
            bias: SVector::from_fn(|j, _| k.bias[j] as f32),
            dense: SVector::from_fn(|i, _| k.dense[i] as f32),
            dense_bias: k.dense_bias as f32,
            h: SVector::zeros(),
            c: SVector::zeros(),
        }
    }

    #[inline]
    fn step(&mut self, x: f32) -> f32 {
        let mut z = self.bias;
        z.axpy(x, &self.kernel, 1.0);
        recurrent_product(V, &self.recurrent_t, &self.h, &mut z);
        let z = z.as_mut_slice();
        let (ifg, o) = z.split_at_mut(3 * U);
        let (i_f, g) = ifg.split_at_mut(2 * U);
        if V != SCALAR {
            sigmoid_in_place(i_f);
            tanh_in_place(g);
            sigmoid_in_place(o);
        } else {
            i_f.iter_mut().for_each(|v| *v = sigmoid_scalar(*v));
            g.iter_mut().for_each(|v| *v = v.tanh());
            o.iter_mut().for_each(|v| *v = sigmoid_scalar(*v));
        }
        let (i, f) = i_f.split_at(U);
        let c = self.c.as_mut_slice();
        for k in 0..U {
            c[k] = f[k] * c[k] + i[k] * g[k];
        }
        let h = self.h.as_mut_slice();
        if V != SCALAR {
            h.copy_from_slice(c);
            tanh_in_place(h);
            for k in 0..U {
                h[k] *= o[k];
            }
        } else {
            for k in 0..U {
                h[k] = o[k] * c[k].tanh();
            }
        }
        self.dense.dot(&self.h) + self.dense_bias
    }
}

/// `z += recurrentᵀ h`: nalgebra's `gemv`, or kiln's `gemm` for `SIMD_GEMM`. In place
/// through references: `recurrent_t * h` by value would copy the matrix every step.
#[inline]
fn recurrent_product<const R: usize>(
    variant: u8,
    recurrent_t: &SMatrix<f32, R, U>,
    h: &SVector<f32, U>,
    z: &mut SVector<f32, R>,
) {
    if variant == SIMD_GEMM {
        gemm(
            1.0,
            recurrent_t.as_slice(),
            Strided::column_major(R, U),
            h.as_slice(),
            Strided::column_major(U, 1),
            1.0,
            z.as_mut_slice(),
            Strided::column_major(R, 1),
        );
    } else {
        z.gemv(1.0, recurrent_t, h, 1.0);
    }
}

/// The exact reference: the same LSTM in `f64`.
struct LstmF64<'k> {
    k: &'k LstmKeras,
    h: Vec<f64>,
    c: Vec<f64>,
}

impl LstmF64<'_> {
    fn step(&mut self, x: f64) -> f64 {
        let z: Vec<f64> = (0..U4)
            .map(|j| {
                x * self.k.kernel[j]
                    + self.k.bias[j]
                    + (0..U)
                        .map(|i| self.h[i] * self.k.recurrent[i * U4 + j])
                        .sum::<f64>()
            })
            .collect();
        for u in 0..U {
            let (i, f) = (sigmoid_f64(z[u]), sigmoid_f64(z[U + u]));
            let (g, o) = (z[2 * U + u].tanh(), sigmoid_f64(z[3 * U + u]));
            self.c[u] = f * self.c[u] + i * g;
            self.h[u] = o * self.c[u].tanh();
        }
        (0..U).map(|u| self.h[u] * self.k.dense[u]).sum::<f64>() + self.k.dense_bias
    }
}

/// Keras-layout weights of GRU(1 -> 32) + Dense(1), `reset_after = True`, in `f64`.
struct GruKeras {
    kernel: Vec<f64>,    // (1, 3u)
    recurrent: Vec<f64>, // (u, 3u)
    bias: Vec<f64>,      // (2, 3u): input bias, then recurrent bias
    dense: Vec<f64>,
    dense_bias: f64,
}

impl GruKeras {
    fn new() -> Self {
        GruKeras {
            kernel: glorot(1, U3, 11),
            recurrent: values(U * U3, 12).iter().map(|v| 0.25 * v).collect(),
            bias: values(2 * U3, 13).iter().map(|v| 0.1 * v).collect(),
            dense: glorot(U, 1, 14),
            dense_bias: -0.05,
        }
    }
}

/// The GRU step in `f32` on nalgebra static matrices; `V` picks the variant.
struct Gru<const V: u8> {
    kernel: SVector<f32, U3>,
    recurrent_t: SMatrix<f32, U3, U>,
    input_bias: SVector<f32, U3>,
    recurrent_bias: SVector<f32, U3>,
    dense: SVector<f32, U>,
    dense_bias: f32,
    h: SVector<f32, U>,
}

impl<const V: u8> Gru<V> {
    fn new(k: &GruKeras) -> Self {
        Gru {
            kernel: SVector::from_fn(|j, _| k.kernel[j] as f32),
            recurrent_t: SMatrix::from_fn(|j, i| k.recurrent[i * U3 + j] as f32),
            input_bias: SVector::from_fn(|j, _| k.bias[j] as f32),
            recurrent_bias: SVector::from_fn(|j, _| k.bias[U3 + j] as f32),
            dense: SVector::from_fn(|i, _| k.dense[i] as f32),
            dense_bias: k.dense_bias as f32,
            h: SVector::zeros(),
        }
    }

    #[inline]
    fn step(&mut self, x: f32) -> f32 {
        let mut xs = self.input_bias;
        xs.axpy(x, &self.kernel, 1.0);
        let mut rec = self.recurrent_bias;
        recurrent_product(V, &self.recurrent_t, &self.h, &mut rec);
        let (xs, rec) = (xs.as_slice(), rec.as_mut_slice());
        // z and r: sigmoid of input part + recurrent part, in place over `rec`.
        let (zr, rec_h) = rec.split_at_mut(2 * U);
        for (v, x) in zr.iter_mut().zip(xs) {
            *v += x;
        }
        let mut hh = [0.0f32; U];
        hh.copy_from_slice(&xs[2 * U..]);
        if V != SCALAR {
            sigmoid_in_place(zr);
        } else {
            zr.iter_mut().for_each(|v| *v = sigmoid_scalar(*v));
        }
        let (z, r) = zr.split_at(U);
        for k in 0..U {
            hh[k] += r[k] * rec_h[k];
        }
        if V != SCALAR {
            tanh_in_place(&mut hh);
        } else {
            hh.iter_mut().for_each(|v| *v = v.tanh());
        }
        let h = self.h.as_mut_slice();
        for k in 0..U {
            h[k] = z[k] * h[k] + (1.0 - z[k]) * hh[k];
        }
        self.dense.dot(&self.h) + self.dense_bias
    }
}

/// The exact reference: the same GRU in `f64`.
struct GruF64<'k> {
    k: &'k GruKeras,
    h: Vec<f64>,
}

impl GruF64<'_> {
    fn step(&mut self, x: f64) -> f64 {
        let k = self.k;
        let xs: Vec<f64> = (0..U3).map(|j| x * k.kernel[j] + k.bias[j]).collect();
        let rec: Vec<f64> = (0..U3)
            .map(|j| {
                k.bias[U3 + j]
                    + (0..U)
                        .map(|i| self.h[i] * k.recurrent[i * U3 + j])
                        .sum::<f64>()
            })
            .collect();
        for u in 0..U {
            let z = sigmoid_f64(xs[u] + rec[u]);
            let r = sigmoid_f64(xs[U + u] + rec[U + u]);
            let hh = (xs[2 * U + u] + r * rec[2 * U + u]).tanh();
            self.h[u] = z * self.h[u] + (1.0 - z) * hh;
        }
        (0..U).map(|u| self.h[u] * k.dense[u]).sum::<f64>() + k.dense_bias
    }
}

/// A hand-written cell with its Dense(1) head: one streaming step.
trait Cell {
    fn step(&mut self, x: f32) -> f32;
}

impl<const V: u8> Cell for Lstm<V> {
    #[inline]
    fn step(&mut self, x: f32) -> f32 {
        Lstm::step(self, x)
    }
}

impl<const V: u8> Cell for Gru<V> {
    #[inline]
    fn step(&mut self, x: f32) -> f32 {
        Gru::step(self, x)
    }
}

kiln::model! {
    /// The kiln row's LSTM: Keras's own spelling of the streaming model.
    KilnLstm = Sequential([Input(shape = (None, 1)), LSTM(32, return_sequences = True), Dense(1)]);
    /// The kiln row's GRU (Keras 3's default `reset_after = True`).
    KilnGru = Sequential([Input(shape = (None, 1)), GRU(32, return_sequences = True), Dense(1)]);
}

/// A `kiln::model!` run through `Streaming::step`, its state carried between calls.
struct KilnStep<M: Streaming> {
    model: M,
    state: M::State,
}

impl<M: Model + Streaming> KilnStep<M> {
    /// The model with Keras-layout weights (`f64`, rounded to `f32`) set by name.
    fn new(weights: &[(&str, &[f64])]) -> Self {
        let mut model = M::new(0);
        for (name, values) in weights {
            let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            model
                .set_weight(name, &values)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let state = model.new_state();
        KilnStep { model, state }
    }
}

impl<M> Cell for KilnStep<M>
where
    M: Streaming<StepInput = SVector<f32, 1>, StepOutput = SVector<f32, 1>>,
{
    #[inline]
    fn step(&mut self, x: f32) -> f32 {
        self.model.step(&mut self.state, &SVector::<f32, 1>::new(x))[0]
    }
}

/// Runs `cell` beside its exact reference over `input` and prints the largest output
/// deviation, then times one step per iteration, the state carrying over.
fn bench_cell(
    g: &mut BenchmarkGroup<'_, WallTime>,
    model: &str,
    label: &str,
    mut cell: impl Cell,
    mut exact: impl FnMut(f64) -> f64,
    input: &[f64],
) {
    let deviation = input
        .iter()
        .map(|&x| (f64::from(cell.step(x as f32)) - exact(x)).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "{model}, {label}: largest output deviation from f64 over {} steps: {deviation:.2e}",
        input.len()
    );
    assert!(deviation < 1e-5, "{model}, {label}: {deviation}");
    let input: Vec<f32> = input.iter().map(|&x| x as f32).collect();
    let mut t = 0;
    g.bench_function(label, |b| {
        b.iter(|| {
            t = (t + 1) % input.len();
            cell.step(black_box(input[t]))
        })
    });
}

/// With `RNN_STEP_DUMP=<dir>` set, writes `<dir>/<model>.txt` for the RTNeural harness
/// (`benches/rtneural/`): each weight as the models get it (rounded to `f32`), the input
/// signal, and kiln's and the `f64` cell's outputs over it, one `name count values...` line
/// each. The `f32` values are written through `f64`, so they read back exactly. Then times
/// `kiln` the harness's way, for a like-for-like row: after 10^5 warm-up steps, three rounds
/// of 10^6 steps, the state carried and the input cycling, by wall clock and thread CPU time.
fn dump(
    model: &str,
    weights: &[(&str, &[f64])],
    input: &[f64],
    mut kiln: impl Cell,
    mut exact: impl FnMut(f64) -> f64,
) {
    let Some(dir) = std::env::var_os("RNN_STEP_DUMP") else {
        return;
    };
    let f32_through_f64 = |v: &[f64]| v.iter().map(|&v| f64::from(v as f32)).collect();
    let mut lines: Vec<(&str, Vec<f64>)> = weights
        .iter()
        .map(|(name, values)| (*name, f32_through_f64(values)))
        .collect();
    lines.push(("input", f32_through_f64(input)));
    let input32: Vec<f32> = input.iter().map(|&x| x as f32).collect();
    let outputs = input32.iter().map(|&x| f64::from(kiln.step(x))).collect();
    lines.push(("kiln", outputs));
    lines.push(("exact", input.iter().map(|&x| exact(x)).collect()));
    let mut text = String::new();
    for (name, values) in lines {
        text += &format!("{name} {}", values.len());
        values.iter().for_each(|v| text += &format!(" {v:e}"));
        text.push('\n');
    }
    let path = std::path::Path::new(&dir).join(format!("{model}.txt"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut t = 0;
    let mut steps = |n: u32| {
        let (wall, cpu) = (std::time::Instant::now(), thread_cpu_ns());
        let mut sum = 0.0;
        for _ in 0..n {
            t = if t + 1 == input32.len() { 0 } else { t + 1 };
            sum += kiln.step(black_box(input32[t]));
        }
        black_box(sum);
        let cpu = (thread_cpu_ns() - cpu) / f64::from(n);
        (wall.elapsed().as_nanos() as f64 / f64::from(n), cpu)
    };
    steps(100_000);
    let rounds: Vec<(f64, f64)> = (0..3).map(|_| steps(1_000_000)).collect();
    let show = |ns: Vec<f64>| {
        let mut sorted = ns.clone();
        sorted.sort_by(f64::total_cmp);
        let ns: Vec<String> = ns.iter().map(|ns| format!("{ns:.1}")).collect();
        format!("{} (median {:.1})", ns.join(" "), sorted[1])
    };
    eprintln!(
        "{model}: kiln Streaming::step, ns per step over 3 rounds of 1000000 steps: wall {}; \
         thread CPU {}",
        show(rounds.iter().map(|r| r.0).collect()),
        show(rounds.iter().map(|r| r.1).collect())
    );
}

/// This thread's CPU time in ns (`CLOCK_THREAD_CPUTIME_ID`), less disturbed than the wall
/// clock by other processes on a shared machine; NaN off 64-bit Linux.
fn thread_cpu_ns() -> f64 {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        extern "C" {
            fn clock_gettime(clock: i32, time: *mut [i64; 2]) -> i32;
        }
        let mut time = [0i64; 2];
        // SAFETY: `time` is a valid `timespec` (two 64-bit fields on 64-bit Linux), and 3
        // is `CLOCK_THREAD_CPUTIME_ID`.
        if unsafe { clock_gettime(3, &mut time) } == 0 {
            return time[0] as f64 * 1e9 + time[1] as f64;
        }
    }
    f64::NAN
}

/// The `kiln::model!` row.
const KILN_LABEL: &str = "kiln model!, Streaming::step";

const LABELS: [&str; 3] = [
    "scalar f32::tanh/exp, nalgebra product",
    "kiln simd_math, nalgebra product",
    "kiln simd_math, kiln gemm product",
];

fn lstm(c: &mut Criterion) {
    let keras = LstmKeras::new();
    let input = signal(CHECK_STEPS);
    let model = "LSTM(1 -> 32) + Dense(1)";
    let exact = || {
        let mut reference = LstmF64 {
            k: &keras,
            h: vec![0.0; U],
            c: vec![0.0; U],
        };
        move |x| reference.step(x)
    };
    let mut g = c.benchmark_group(format!("{model} step"));
    let cell = Lstm::<SCALAR>::new(&keras);
    bench_cell(&mut g, model, LABELS[0], cell, exact(), &input);
    let cell = Lstm::<SIMD_MATH>::new(&keras);
    bench_cell(&mut g, model, LABELS[1], cell, exact(), &input);
    let cell = Lstm::<SIMD_GEMM>::new(&keras);
    bench_cell(&mut g, model, LABELS[2], cell, exact(), &input);
    let dense_bias = [keras.dense_bias];
    let weights: [(&str, &[f64]); 5] = [
        ("lstm/lstm_cell/kernel", &keras.kernel),
        ("lstm/lstm_cell/recurrent_kernel", &keras.recurrent),
        ("lstm/lstm_cell/bias", &keras.bias),
        ("dense/kernel", &keras.dense),
        ("dense/bias", &dense_bias),
    ];
    let cell = KilnStep::<KilnLstm>::new(&weights);
    dump(
        "lstm",
        &weights,
        &input,
        KilnStep::<KilnLstm>::new(&weights),
        exact(),
    );
    bench_cell(&mut g, model, KILN_LABEL, cell, exact(), &input);
    g.finish();
}

fn gru(c: &mut Criterion) {
    let keras = GruKeras::new();
    let input = signal(CHECK_STEPS);
    let model = "GRU(1 -> 32) + Dense(1)";
    let exact = || {
        let mut reference = GruF64 {
            k: &keras,
            h: vec![0.0; U],
        };
        move |x| reference.step(x)
    };
    let mut g = c.benchmark_group(format!("{model} step"));
    let cell = Gru::<SCALAR>::new(&keras);
    bench_cell(&mut g, model, LABELS[0], cell, exact(), &input);
    let cell = Gru::<SIMD_MATH>::new(&keras);
    bench_cell(&mut g, model, LABELS[1], cell, exact(), &input);
    let cell = Gru::<SIMD_GEMM>::new(&keras);
    bench_cell(&mut g, model, LABELS[2], cell, exact(), &input);
    let dense_bias = [keras.dense_bias];
    let weights: [(&str, &[f64]); 5] = [
        ("gru/gru_cell/kernel", &keras.kernel),
        ("gru/gru_cell/recurrent_kernel", &keras.recurrent),
        ("gru/gru_cell/bias", &keras.bias),
        ("dense/kernel", &keras.dense),
        ("dense/bias", &dense_bias),
    ];
    let cell = KilnStep::<KilnGru>::new(&weights);
    dump(
        "gru",
        &weights,
        &input,
        KilnStep::<KilnGru>::new(&weights),
        exact(),
    );
    bench_cell(&mut g, model, KILN_LABEL, cell, exact(), &input);
    g.finish();
}

/// The activations alone: a slice through `f32::tanh` / `f32::exp` one value at a time,
/// and through kiln's slice kernels (on the instruction set `kiln::isa` picks, which
/// `KILN_ISA` can lower). Each iteration starts from a fresh copy of the input, made outside
/// the timing.
fn activations(c: &mut Criterion) {
    let mut g = c.benchmark_group("activations");
    for n in [32, 1024] {
        let input: Vec<f32> = values(n, 21).iter().map(|&v| (6.0 * v) as f32).collect();
        let mut run = |name: &str, f: fn(&mut [f32])| {
            g.bench_function(format!("{name}, {n} values"), |b| {
                b.iter_batched_ref(|| input.clone(), |v| f(black_box(v)), BatchSize::SmallInput)
            });
        };
        run("tanh, f32::tanh", |v| {
            v.iter_mut().for_each(|x| *x = x.tanh())
        });
        run("tanh, kiln simd_math", tanh_in_place);
        run("sigmoid, f32::exp", |v| {
            v.iter_mut().for_each(|x| *x = sigmoid_scalar(*x))
        });
        run("sigmoid, kiln simd_math", sigmoid_in_place);
    }
    g.finish();
}

fn config() -> Criterion {
    // Short runs, as in benches/dense.rs: 0.5 s warm-up, 3 s of measurement, 50 samples.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

/// The kiln LSTM row's model with Keras's initial weights (zero biases but the forget
/// gate's, `unit_forget_bias`), fed 0.5 and fed 1e-39: a subnormal input keeps every value
/// of the state subnormal, which the CPU handles more slowly (Keras on JAX would flush them
/// to zero; kiln computes them as IEEE says). The cost a real-time user pays when a signal
/// decays into that range; BENCHMARKS.md, "Fourth session of 2026-12-06".
fn subnormal_state(c: &mut Criterion) {
    let model = KilnLstm::new(0);
    let mut g = c.benchmark_group("LSTM(1 -> 32) + Dense(1) step, subnormal state");
    for (label, x) in [("input 0.5", 0.5f32), ("input 1e-39", 1e-39)] {
        let mut state = model.new_state();
        let x = SVector::<f32, 1>::new(x);
        for _ in 0..10_000 {
            model.step(&mut state, &x);
        }
        let subnormal = state.values().iter().filter(|v| v.is_subnormal()).count();
        eprintln!(
            "subnormal state, {label}: {subnormal} of {} state values subnormal",
            state.values().len()
        );
        g.bench_function(label, |b| b.iter(|| model.step(&mut state, black_box(&x))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = lstm, gru, activations, subnormal_state
}
criterion_main!(benches);
