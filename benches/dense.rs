//! kiln's generated `Dense` models against the same networks written by hand in nalgebra.
//!
//! Each bench group times one workload twice, on the same weights and inputs: `kiln` (the
//! model `model!` generates) and `nalgebra` (a hand-written forward pass: static
//! `SMatrix`/`SVector` `&w * x + b` for one sample, dynamic `DMatrix` GEMM for a batch).
//! The baseline's weights are copied out of the kiln model with `get_weight`, and before
//! timing, each workload asserts that both compute the same outputs. The baselines'
//! `predict` functions are `#[inline]` like the generated `Model::predict`, so the optimiser
//! treats both alike: at W1's size (about 30 cycles) whether the call is inlined into
//! criterion's loop changes the time by half.
//!
//! Beside them, in the same run, the probes of `benches/probes`: W2 and W3 beside the time
//! to stream their kernels from cache the way the one-vector kernel reads them, W4 beside
//! registers-only fused multiply-adds of the same FLOP count (one core's peak). The group
//! `dispatch threshold` times both products `Dense::forward` chooses between (nalgebra's
//! inlined static product, kiln's dispatched kernel) at sizes around `DISPATCH_MIN`.
//!
//! Run with `cargo bench --bench dense` (the default build: kiln's kernels pick the CPU's
//! instruction set at run time) and `RUSTFLAGS="-C target-cpu=native" cargo bench --bench
//! dense` (the baselines compiled for the CPU); results are in BENCHMARKS.md.

mod probes;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use kiln::gemm::affine_vector;
use kiln::layers::{Dense, Weights};
use kiln::{Initializer, Model};
use nalgebra::{DMatrix, DVector, SMatrix, SVector};
use std::hint::black_box;
use std::time::Duration;

kiln::model! {
    /// W1: a tiny regressor; the cost is all per-call overhead.
    W1 = Sequential([
        Input(shape = (4,)),
        Dense(8, activation = "relu"),
        Dense(8, activation = "relu"),
        Dense(1),
    ]);
    /// W2: a small classifier (8x8 digits).
    W2 = Sequential([
        Input(shape = (64,)),
        Dense(128, activation = "relu"),
        Dense(64, activation = "relu"),
        Dense(10, activation = "softmax"),
    ]);
    /// W3 (one sample) and W4 (a batch of 256): an MNIST-sized classifier.
    W3 = Sequential([
        Input(shape = (784,)),
        Dense(256, activation = "relu"),
        Dense(128, activation = "relu"),
        Dense(10, activation = "softmax"),
    ]);
}

/// Deterministic values in [-1, 1) (a 64-bit LCG), so runs are comparable.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A kiln model with its default (glorot_uniform) kernels and non-zero biases, so that the
/// bias addition is part of what the agreement check covers.
fn model<M: Model>(seed: u64) -> M {
    let mut m = M::new(seed);
    for (i, (name, shape)) in M::WEIGHT_NAMES.iter().zip(M::WEIGHT_SHAPES).enumerate() {
        if name.ends_with("/bias") {
            let b: Vec<f32> = values(shape.iter().product(), 1000 + i as u64)
                .iter()
                .map(|v| 0.1 * v)
                .collect();
            m.set_weight(name, &b).expect("bias shape");
        }
    }
    m
}

/// One hand-written dense layer of the static baseline: `Wᵀ` as a `U x I` matrix, on the
/// heap like kiln's (the 256 x 784 kernel is 800 KB).
struct StaticDense<const I: usize, const U: usize> {
    w: Box<SMatrix<f32, U, I>>,
    b: Box<SVector<f32, U>>,
}

impl<const I: usize, const U: usize> StaticDense<I, U> {
    /// Copies layer `layer` (`dense`, `dense_1`, ...) out of a kiln model. A Keras kernel
    /// `(I, U)` in row-major order is `Wᵀ` (`U x I`) in nalgebra's column-major order.
    fn from_model<M: Model>(m: &M, layer: &str) -> Self {
        let k = m.get_weight(&format!("{layer}/kernel")).expect("kernel");
        let b = m.get_weight(&format!("{layer}/bias")).expect("bias");
        StaticDense {
            w: Box::new(SMatrix::from_column_slice(&k)),
            b: Box::new(SVector::from_column_slice(&b)),
        }
    }

    #[inline]
    fn affine(&self, x: &SVector<f32, I>) -> SVector<f32, U> {
        self.w.as_ref() * x + *self.b
    }

    #[inline]
    fn relu(&self, x: &SVector<f32, I>) -> SVector<f32, U> {
        let mut y = self.affine(x);
        y.apply(|v| *v = v.max(0.0));
        y
    }

    /// `relu` as Keras defines it: NaN stays NaN (`max(NaN, 0.0)` is 0 in Rust). One more
    /// instruction per vector than `max`, which shows at W1's size.
    #[inline]
    fn keras_relu(&self, x: &SVector<f32, I>) -> SVector<f32, U> {
        let mut y = self.affine(x);
        y.apply(|v| *v = if *v > 0.0 || v.is_nan() { *v } else { 0.0 });
        y
    }
}

#[inline]
fn softmax<const N: usize>(mut y: SVector<f32, N>) -> SVector<f32, N> {
    let max = y.max();
    y.apply(|v| *v = (*v - max).exp());
    let inv = 1.0 / y.sum();
    y * inv
}

/// The static baseline of W1.
struct BaseW1(StaticDense<4, 8>, StaticDense<8, 8>, StaticDense<8, 1>);

impl BaseW1 {
    #[inline]
    fn predict(&self, x: &SVector<f32, 4>) -> SVector<f32, 1> {
        self.2.affine(&self.1.relu(&self.0.relu(x)))
    }

    /// [`BaseW1::predict`] with Keras's NaN-propagating relu, the function kiln computes.
    #[inline]
    fn predict_keras_relu(&self, x: &SVector<f32, 4>) -> SVector<f32, 1> {
        self.2.affine(&self.1.keras_relu(&self.0.keras_relu(x)))
    }
}

/// The static baseline of a 3-layer relu-relu-softmax classifier (W2, W3).
struct BaseMlp<const I: usize, const H1: usize, const H2: usize, const O: usize>(
    StaticDense<I, H1>,
    StaticDense<H1, H2>,
    StaticDense<H2, O>,
);

impl<const I: usize, const H1: usize, const H2: usize, const O: usize> BaseMlp<I, H1, H2, O> {
    fn from_model<M: Model>(m: &M) -> Self {
        BaseMlp(
            StaticDense::from_model(m, "dense"),
            StaticDense::from_model(m, "dense_1"),
            StaticDense::from_model(m, "dense_2"),
        )
    }

    #[inline]
    fn predict(&self, x: &SVector<f32, I>) -> SVector<f32, O> {
        softmax(self.2.affine(&self.1.relu(&self.0.relu(x))))
    }
}

/// One layer of the batched baseline: dynamic `Wᵀ` and bias.
struct DynDense {
    w: DMatrix<f32>,
    b: DVector<f32>,
}

impl DynDense {
    fn from_model<M: Model>(m: &M, layer: &str, inputs: usize, units: usize) -> Self {
        let k = m.get_weight(&format!("{layer}/kernel")).expect("kernel");
        let b = m.get_weight(&format!("{layer}/bias")).expect("bias");
        DynDense {
            w: DMatrix::from_column_slice(units, inputs, &k),
            b: DVector::from_column_slice(&b),
        }
    }

    /// `W X + b` for a batch `X` with one sample per column: one GEMM, then the bias.
    fn affine(&self, x: &DMatrix<f32>) -> DMatrix<f32> {
        let mut y = &self.w * x;
        for mut column in y.column_iter_mut() {
            column += &self.b;
        }
        y
    }
}

/// The batched baseline of W3: from a row-major `(batch, 784)` slice to a row-major
/// `(batch, 10)` vector, like `predict_batch`.
struct BaseW4(DynDense, DynDense, DynDense);

impl BaseW4 {
    fn from_model(m: &W3) -> Self {
        BaseW4(
            DynDense::from_model(m, "dense", 784, 256),
            DynDense::from_model(m, "dense_1", 256, 128),
            DynDense::from_model(m, "dense_2", 128, 10),
        )
    }

    fn predict_batch(&self, xs: &[f32]) -> Vec<f32> {
        let x = DMatrix::from_column_slice(784, xs.len() / 784, xs);
        let mut h = self.0.affine(&x);
        h.apply(|v| *v = v.max(0.0));
        let mut h = self.1.affine(&h);
        h.apply(|v| *v = v.max(0.0));
        let mut y = self.2.affine(&h);
        for mut column in y.column_iter_mut() {
            let max = column.max();
            column.apply(|v| *v = (*v - max).exp());
            let inv = 1.0 / column.sum();
            column *= inv;
        }
        y.data.into()
    }
}

fn assert_agree(what: &str, kiln: &[f32], baseline: &[f32]) {
    assert_eq!(kiln.len(), baseline.len(), "{what}: output lengths");
    for (i, (k, b)) in kiln.iter().zip(baseline).enumerate() {
        assert!(
            (k - b).abs() <= 1e-5 + 1e-4 * b.abs(),
            "{what}: output {i}: kiln {k}, nalgebra {b}"
        );
    }
}

fn w1(c: &mut Criterion) {
    let m: W1 = model(1);
    let base = BaseW1(
        StaticDense::from_model(&m, "dense"),
        StaticDense::from_model(&m, "dense_1"),
        StaticDense::from_model(&m, "dense_2"),
    );
    let x = SVector::<f32, 4>::from_column_slice(&values(4, 7));
    assert_agree("W1", m.predict(&x).as_slice(), base.predict(&x).as_slice());
    let nan = SVector::<f32, 4>::from_column_slice(&[f32::NAN, 0.0, 0.0, 0.0]);
    assert!(m.predict(&nan)[0].is_nan() && base.predict_keras_relu(&nan)[0].is_nan());
    let mut g = c.benchmark_group("W1 4-8-8-1");
    g.bench_function("kiln", |b| b.iter(|| m.predict(black_box(&x))));
    g.bench_function("kiln, predict_into", |b| {
        let (mut y, mut scratch) = (W1::new_output(), W1::new_scratch());
        b.iter(|| m.predict_into(black_box(&x), &mut y, &mut scratch))
    });
    g.bench_function("nalgebra", |b| b.iter(|| base.predict(black_box(&x))));
    g.bench_function("nalgebra, Keras relu", |b| {
        b.iter(|| base.predict_keras_relu(black_box(&x)))
    });
    g.finish();
}

fn w2(c: &mut Criterion) {
    let m: W2 = model(2);
    let base = BaseMlp::<64, 128, 64, 10>::from_model(&m);
    let x = SVector::<f32, 64>::from_column_slice(&values(64, 7));
    assert_agree("W2", m.predict(&x).as_slice(), base.predict(&x).as_slice());
    let mut g = c.benchmark_group("W2 64-128-64-10");
    g.bench_function("kiln", |b| b.iter(|| m.predict(black_box(&x))));
    g.bench_function("kiln, predict_into", |b| {
        let (mut y, mut scratch) = (W2::new_output(), W2::new_scratch());
        b.iter(|| m.predict_into(black_box(&x), &mut y, &mut scratch))
    });
    g.bench_function("nalgebra", |b| b.iter(|| base.predict(black_box(&x))));
    g.bench_function("probe: stream the kernels", |b| {
        b.iter(|| stream_kernels(&m, black_box(&[(64, 128), (128, 64), (64, 10)]), true))
    });
    g.finish();
}

fn w3(c: &mut Criterion) {
    let m: W3 = model(3);
    let base = BaseMlp::<784, 256, 128, 10>::from_model(&m);
    let x = SVector::<f32, 784>::from_column_slice(&values(784, 7));
    assert_agree("W3", m.predict(&x).as_slice(), base.predict(&x).as_slice());
    report_addresses(&m, &base, &x);
    let mut g = c.benchmark_group("W3 784-256-128-10");
    g.bench_function("kiln", |b| b.iter(|| m.predict(black_box(&x))));
    g.bench_function("kiln, predict_into", |b| {
        let (mut y, mut scratch) = (W3::new_output(), W3::new_scratch());
        b.iter(|| m.predict_into(black_box(&x), &mut y, &mut scratch))
    });
    g.bench_function("nalgebra", |b| b.iter(|| base.predict(black_box(&x))));
    let shapes = [(784, 256), (256, 128), (128, 10)];
    g.bench_function("probe: stream the kernels", |b| {
        b.iter(|| stream_kernels(&m, black_box(&shapes), true))
    });
    // The same bytes read from wherever each row starts (16 bytes past a cache line for the
    // first kernel, which malloc maps): what a kernel that ignores alignment pays.
    g.bench_function("probe: stream the kernels, rows' own alignment", |b| {
        b.iter(|| stream_kernels(&m, black_box(&shapes), false))
    });
    g.finish();
}

fn w4(c: &mut Criterion) {
    let m: W3 = model(3);
    let base = BaseW4::from_model(&m);
    let xs = values(256 * 784, 11);
    let kiln_out = m.predict_batch(&xs).expect("batch");
    assert_agree("W4", &kiln_out, &base.predict_batch(&xs));
    // The batch agrees with one-sample predictions too, so both kiln paths are the same model.
    let first = m.predict_slice(&xs[..784]).expect("sample");
    assert_agree("W4 sample 0", &kiln_out[..10], &first);
    // Multiply-adds of the three products, two FLOPs each.
    let flops = 2 * 256 * (784 * 256 + 256 * 128 + 128 * 10) as u64;
    let iterations = probes::fma_iterations_for(flops);
    let mut g = c.benchmark_group("W4 784-256-128-10 batch 256");
    g.throughput(Throughput::Elements(flops));
    // `predict_batch` as a user gets it: split across `max_threads()` threads (the CPU
    // count) when the work repays it, which W4 does.
    g.bench_function("kiln", |b| {
        b.iter(|| m.predict_batch(black_box(&xs)).expect("batch"))
    });
    g.bench_function("kiln, 1 thread", |b| {
        kiln::threads::set_max_threads(1);
        b.iter(|| m.predict_batch(black_box(&xs)).expect("batch"));
        kiln::threads::set_max_threads(0);
    });
    g.bench_function("nalgebra", |b| {
        b.iter(|| base.predict_batch(black_box(&xs)))
    });
    g.bench_function("probe: FMA peak, same FLOPs", |b| {
        b.iter(|| probes::fma(black_box(iterations), black_box(1.0)))
    });
    g.finish();
    eprintln!(
        "W4: {flops} FLOP; peak probe {} FLOP on {:?}; predict_batch threads: up to {}, {} for W4",
        probes::fma_flops(iterations),
        kiln::isa::isa(),
        kiln::threads::max_threads(),
        kiln::threads::threads_for(256, w3_work(), kiln::threads::max_threads()),
    );
}

/// `predict_batch`'s estimate of one W3 sample's multiply-adds.
fn w3_work() -> usize {
    kiln::threads::work_per_sample(W3::INPUT_SHAPE, W3::LAYERS, W3::WEIGHT_SHAPES)
}

/// W3's `predict_batch` at batch sizes around the split threshold: on one thread, as
/// `predict_batch` decides (`auto`), and forced onto two threads (`forward_in_parts`, which
/// `predict_batch` calls once the batch passes the threshold). Where `2 threads` beats
/// `1 thread` is the break-even `threads::MIN_WORK_PER_THREAD` stands for; `auto` must
/// never be slower than `1 thread` (small batches: it does not split).
fn batches(c: &mut Criterion) {
    let m: W3 = model(3);
    let mut g = c.benchmark_group("W3 batches, threads");
    for n in [2, 8, 16, 20, 24, 28, 32, 48, 64, 128] {
        let xs = values(n * 784, 12);
        let split = kiln::threads::threads_for(n, w3_work(), kiln::threads::max_threads());
        g.bench_function(format!("batch {n}: 1 thread"), |b| {
            kiln::threads::set_max_threads(1);
            b.iter(|| m.predict_batch(black_box(&xs)).expect("batch"));
            kiln::threads::set_max_threads(0);
        });
        g.bench_function(format!("batch {n}: auto ({split} threads)"), |b| {
            b.iter(|| m.predict_batch(black_box(&xs)).expect("batch"))
        });
        if n >= 4 {
            g.bench_function(format!("batch {n}: 2 threads"), |b| {
                b.iter(|| kiln::threads::forward_in_parts(&m, black_box(&xs), 2))
            });
        }
    }
    g.finish();
}

/// The stream probe over a model's kernels (weights 0, 2, 4, ...: kernel, bias per layer),
/// read where the model keeps them.
fn stream_kernels<M: Model>(m: &M, shapes: &[(usize, usize)], line_aligned: bool) -> f32 {
    shapes
        .iter()
        .enumerate()
        .map(|(layer, &(rows, cols))| {
            probes::stream(m.__weight(2 * layer), rows, cols, line_aligned)
        })
        .sum()
}

/// Where W3's buffers lie, modulo a page and a cache line: the evidence for (or against)
/// alignment and 4 KiB aliasing when a process's times differ from another's.
fn report_addresses(m: &W3, base: &BaseMlp<784, 256, 128, 10>, x: &SVector<f32, 784>) {
    let at = |p: *const f32| {
        let a = p as usize;
        format!("{:#x} (mod 4096 = {}, mod 64 = {})", a, a % 4096, a % 64)
    };
    eprintln!(
        "W3 addresses: kiln kernels {} | {} | {}; baseline kernels {} | {} | {}; input {}",
        at(m.__weight(0).as_ptr()),
        at(m.__weight(2).as_ptr()),
        at(m.__weight(4).as_ptr()),
        at(base.0.w.as_ptr()),
        at(base.1.w.as_ptr()),
        at(base.2.w.as_ptr()),
        at(x.as_ptr()),
    );
}

/// One `Dense(U)` on `I` inputs, one sample, both ways `Dense::forward` can run it inside
/// the generated `predict` (which runs in `kiln::isa::dispatch`, compiled for the CPU's
/// best instruction set): the static product inlined (what it does up to
/// `INLINE_SAMPLE_MAX` multiply-adds, and for columns of a batch below `DISPATCH_MIN`) and
/// kiln's one-vector kernel `affine_vector` (above). Both arms run inside `dispatch`, as
/// `predict` does, so the comparison is the one `forward`'s thresholds decide.
fn threshold_case<const I: usize, const U: usize>(g: &mut BenchmarkGroup<WallTime>) {
    let mut d = Dense::<I, U>::new(true, Initializer::Zeros, Initializer::Zeros, 0, 0);
    d.weight_mut(0).copy_from_slice(&values(I * U, 5));
    d.weight_mut(1).copy_from_slice(&values(U, 6));
    let x = SVector::<f32, I>::from_column_slice(&values(I, 7));
    let inline = |x: &SVector<f32, I>| {
        kiln::isa::dispatch(
            #[inline(always)]
            || {
                let kernel: &SMatrix<f32, U, I> = &d.kernel;
                let mut y = kernel * x;
                if let Some(bias) = &d.bias {
                    y += &**bias;
                }
                y
            },
        )
    };
    let kernel = |x: &SVector<f32, I>| {
        kiln::isa::dispatch(
            #[inline(always)]
            || {
                let mut y = SVector::<f32, U>::zeros();
                let bias = d.bias.as_ref().map(|b| b.as_slice());
                affine_vector(x.as_slice(), d.weight(0), bias, y.as_mut_slice());
                y
            },
        )
    };
    assert_agree("threshold", inline(&x).as_slice(), kernel(&x).as_slice());
    let size = format!("{I}x{U} ({} MACs)", I * U);
    g.bench_function(format!("{size}: inlined"), |b| {
        b.iter(|| inline(black_box(&x)))
    });
    g.bench_function(format!("{size}: one-vector kernel"), |b| {
        b.iter(|| kernel(black_box(&x)))
    });
}

fn threshold(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch threshold");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    threshold_case::<8, 8>(&mut g);
    threshold_case::<16, 16>(&mut g);
    threshold_case::<16, 32>(&mut g);
    threshold_case::<32, 32>(&mut g);
    threshold_case::<32, 64>(&mut g);
    threshold_case::<64, 64>(&mut g);
    threshold_case::<64, 128>(&mut g);
    threshold_case::<128, 128>(&mut g);
    threshold_case::<128, 256>(&mut g);
    threshold_case::<256, 256>(&mut g);
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the whole bench takes about a minute.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = dense;
    config = config();
    targets = w1, w2, w3, w4, batches, threshold
}
criterion_main!(dense);
