//! kiln's generated `Conv2D` models against the same networks written by hand: im2col plus
//! one nalgebra GEMM (`DMatrix`, matrixmultiply's SGEMM), bias, relu and max-pool loops.
//!
//! Each bench group times one workload on the same weights and inputs: `kiln` (the model
//! `model!` generates, through `predict`, `predict_into` or `predict_batch`) and `im2col`
//! (the hand-written forward pass). The baseline's weights are copied out of the kiln model
//! with `get_weight`, and before timing each workload asserts that both compute the same
//! outputs. The baseline keeps its im2col and activation buffers between calls (the fastest
//! way to write it by hand); its batched calls return a fresh `Vec`, as `predict_batch` does.
//!
//! - C1: the seed notes' `Conv2D(64, 3, padding = "same")` on a (32, 32, 3) input, batch 1
//!   and 64;
//! - C2: the notes' Keras 1 spelling, `Convolution2D(64, 3, 3, border_mode = "same",
//!   input_shape = (3, 32, 32), dim_ordering = "th")`: the same layer on channels-first data;
//! - C3: a small CNN, 28x28x1 -> Conv2D(32, 3, relu) -> MaxPooling2D -> Conv2D(64, 3, relu)
//!   -> MaxPooling2D -> Flatten -> Dense(10, softmax), batch 1 and 64;
//! - C4: one `train_on_batch` of C3's network (batch 64, Adam, categorical cross-entropy),
//!   recorded without a baseline.
//!
//! Run with `cargo bench --bench conv` and `RUSTFLAGS="-C target-cpu=native" cargo bench
//! --bench conv`; results are in BENCHMARKS.md ("Convolution").

use criterion::{criterion_group, criterion_main, Criterion};
use kiln::{Adam, Loss, Model, Tensor};
use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut, DVector};
use std::hint::black_box;
use std::time::Duration;

kiln::model! {
    /// C1: the notes' Conv2D example, channels last.
    NotesConv = Sequential([Input(shape = (32, 32, 3)), Conv2D(64, 3, padding = "same")]);
    /// C2: the notes' Keras 1 spelling of it, channels first.
    NotesConvTh = Sequential([
        Convolution2D(64, 3, 3, border_mode = "same", input_shape = (3, 32, 32), dim_ordering = "th"),
    ]);
    /// C3 and C4: an MNIST-sized CNN.
    SmallCnn = Sequential([
        Input(shape = (28, 28, 1)),
        Conv2D(32, 3, activation = "relu"),
        MaxPooling2D(),
        Conv2D(64, 3, activation = "relu"),
        MaxPooling2D(),
        Flatten(),
        Dense(10, activation = "softmax"),
    ]);
}

const BATCH: usize = 64;

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

/// One hand-written 2-D convolution (stride 1, square kernel, `valid` or `same`) as im2col
/// plus one SGEMM.
struct Im2col {
    /// The Keras kernel `(k, k, c, f)` row-major, read as `W` (`f x k·k·c`) column-major:
    /// patch row `(ky·k + kx)·c + ci`.
    w: DMatrix<f32>,
    /// `Wᵀ` (`k·k·c x f`), for channels-first data.
    wt: DMatrix<f32>,
    b: Vec<f32>,
    /// Input height and width, channels, output height and width, filters, kernel, pad.
    h: usize,
    width: usize,
    c: usize,
    oh: usize,
    ow: usize,
    f: usize,
    k: usize,
    pad: usize,
    relu: bool,
    channels_first: bool,
}

impl Im2col {
    #[allow(clippy::too_many_arguments)]
    fn from_model<M: Model>(
        m: &M,
        layer: &str,
        [h, width, c]: [usize; 3],
        f: usize,
        k: usize,
        same: bool,
        relu: bool,
        channels_first: bool,
    ) -> Self {
        let kernel = m.get_weight(&format!("{layer}/kernel")).expect("kernel");
        let b = m.get_weight(&format!("{layer}/bias")).expect("bias");
        let w = DMatrix::from_column_slice(f, k * k * c, &kernel);
        let (pad, oh, ow) = if same {
            ((k - 1) / 2, h, width)
        } else {
            (0, h - k + 1, width - k + 1)
        };
        Im2col {
            wt: w.transpose(),
            w,
            b,
            h,
            width,
            c,
            oh,
            ow,
            f,
            k,
            pad,
            relu,
            channels_first,
        }
    }

    fn patch_len(&self) -> usize {
        self.k * self.k * self.c
    }

    fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// The input position of output position `o` at tap `t`, if inside the input.
    fn source(&self, o: usize, t: usize, size: usize) -> Option<usize> {
        (o + t).checked_sub(self.pad).filter(|&i| i < size)
    }

    /// `y = relu?(conv(x) + b)` for `samples` samples; `cols` is the reused im2col buffer.
    fn forward(&self, x: &[f32], cols: &mut Vec<f32>, y: &mut [f32]) {
        if self.channels_first {
            self.forward_channels_first(x, cols, y);
        } else {
            self.forward_channels_last(x, cols, y);
        }
        if self.relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }

    /// Channels last: every sample's patches are columns of one `k·k·c x positions·samples`
    /// matrix, and `W · cols` is the whole batch's output, channels last, in one GEMM.
    fn forward_channels_last(&self, x: &[f32], cols: &mut Vec<f32>, y: &mut [f32]) {
        let (kk, p, c) = (self.patch_len(), self.positions(), self.c);
        let samples = x.len() / (self.h * self.width * c);
        cols.resize(kk * p * samples, 0.0);
        for (s, xs) in x.chunks_exact(self.h * self.width * c).enumerate() {
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let col = &mut cols[(s * p + oy * self.ow + ox) * kk..][..kk];
                    for ky in 0..self.k {
                        let row = &mut col[ky * self.k * c..][..self.k * c];
                        let Some(iy) = self.source(oy, ky, self.h) else {
                            row.fill(0.0);
                            continue;
                        };
                        for kx in 0..self.k {
                            let dst = &mut row[kx * c..][..c];
                            match self.source(ox, kx, self.width) {
                                Some(ix) => {
                                    dst.copy_from_slice(&xs[(iy * self.width + ix) * c..][..c])
                                }
                                None => dst.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
        let n = p * samples;
        let cols = DMatrixView::from_slice(cols, kk, n);
        let mut out = DMatrixViewMut::from_slice(y, self.f, n);
        out.gemm(1.0, &self.w, &cols, 0.0);
        for position in y.chunks_exact_mut(self.f) {
            position.iter_mut().zip(&self.b).for_each(|(v, b)| *v += b);
        }
    }

    /// Channels first: per sample, `cols` (`positions x k·k·c`, one shifted input plane per
    /// column) times `Wᵀ` is the sample's `(f, oh, ow)` output (`positions x f`
    /// column-major).
    fn forward_channels_first(&self, x: &[f32], cols: &mut Vec<f32>, y: &mut [f32]) {
        let (kk, p, c) = (self.patch_len(), self.positions(), self.c);
        let plane = self.h * self.width;
        cols.resize(kk * p, 0.0);
        for (xs, ys) in x
            .chunks_exact(plane * c)
            .zip(y.chunks_exact_mut(p * self.f))
        {
            for ky in 0..self.k {
                for kx in 0..self.k {
                    for ci in 0..c {
                        let column = &mut cols[((ky * self.k + kx) * c + ci) * p..][..p];
                        for oy in 0..self.oh {
                            let dst = &mut column[oy * self.ow..][..self.ow];
                            let Some(iy) = self.source(oy, ky, self.h) else {
                                dst.fill(0.0);
                                continue;
                            };
                            let src = &xs[ci * plane + iy * self.width..][..self.width];
                            for (ox, d) in dst.iter_mut().enumerate() {
                                *d = self.source(ox, kx, self.width).map_or(0.0, |ix| src[ix]);
                            }
                        }
                    }
                }
            }
            let cols = DMatrixView::from_slice(cols, p, kk);
            let mut out = DMatrixViewMut::from_slice(ys, p, self.f);
            out.gemm(1.0, &cols, &self.wt, 0.0);
            for (plane, b) in ys.chunks_exact_mut(p).zip(&self.b) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
    }
}

/// 2x2 max pooling (stride 2, `valid`) of channels-last samples `(h, w, c)`.
fn max_pool(x: &[f32], [h, w, c]: [usize; 3], y: &mut [f32]) {
    let (oh, ow) = (h / 2, w / 2);
    for (xs, ys) in x
        .chunks_exact(h * w * c)
        .zip(y.chunks_exact_mut(oh * ow * c))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                let at = |dy: usize, dx: usize| &xs[((2 * oy + dy) * w + 2 * ox + dx) * c..][..c];
                let (a, b, d, e) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                let out = &mut ys[(oy * ow + ox) * c..][..c];
                for i in 0..c {
                    out[i] = a[i].max(b[i]).max(d[i].max(e[i]));
                }
            }
        }
    }
}

/// The notes' single convolution by hand, buffers kept between calls.
struct BaseNotes {
    conv: Im2col,
    cols: Vec<f32>,
    y: Vec<f32>,
}

impl BaseNotes {
    fn new<M: Model>(m: &M, channels_first: bool) -> Self {
        let conv = Im2col::from_model(m, "conv2d", [32, 32, 3], 64, 3, true, false, channels_first);
        BaseNotes {
            conv,
            cols: Vec::new(),
            y: Vec::new(),
        }
    }

    /// One sample into the kept output buffer.
    fn predict(&mut self, x: &[f32]) -> &[f32] {
        self.y.resize(32 * 32 * 64, 0.0);
        self.conv.forward(x, &mut self.cols, &mut self.y);
        &self.y
    }

    /// A batch, returned as a fresh `Vec` like `predict_batch`.
    fn predict_batch(&mut self, xs: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; xs.len() / 3 * 64];
        self.conv.forward(xs, &mut self.cols, &mut y);
        y
    }
}

/// C3's network by hand, buffers kept between calls.
struct BaseCnn {
    conv1: Im2col,
    conv2: Im2col,
    /// Dense's `Wᵀ` (`10 x 1600`) and bias.
    w: DMatrix<f32>,
    b: DVector<f32>,
    cols: Vec<f32>,
    a1: Vec<f32>,
    p1: Vec<f32>,
    a2: Vec<f32>,
    p2: Vec<f32>,
}

impl BaseCnn {
    fn new(m: &SmallCnn) -> Self {
        BaseCnn {
            conv1: Im2col::from_model(m, "conv2d", [28, 28, 1], 32, 3, false, true, false),
            conv2: Im2col::from_model(m, "conv2d_1", [13, 13, 32], 64, 3, false, true, false),
            w: DMatrix::from_column_slice(10, 1600, &m.get_weight("dense/kernel").expect("kernel")),
            b: DVector::from_column_slice(&m.get_weight("dense/bias").expect("bias")),
            cols: Vec::new(),
            a1: Vec::new(),
            p1: Vec::new(),
            a2: Vec::new(),
            p2: Vec::new(),
        }
    }

    /// `samples` samples from a row-major slice to a row-major `(samples, 10)` `Vec`.
    fn predict_batch(&mut self, xs: &[f32]) -> Vec<f32> {
        let n = xs.len() / 784;
        self.a1.resize(n * 26 * 26 * 32, 0.0);
        self.p1.resize(n * 13 * 13 * 32, 0.0);
        self.a2.resize(n * 11 * 11 * 64, 0.0);
        self.p2.resize(n * 5 * 5 * 64, 0.0);
        self.conv1.forward(xs, &mut self.cols, &mut self.a1);
        max_pool(&self.a1, [26, 26, 32], &mut self.p1);
        self.conv2.forward(&self.p1, &mut self.cols, &mut self.a2);
        max_pool(&self.a2, [11, 11, 64], &mut self.p2);
        let flat = DMatrixView::from_slice(&self.p2, 1600, n);
        let mut y = &self.w * flat;
        for mut column in y.column_iter_mut() {
            column += &self.b;
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
            "{what}: output {i}: kiln {k}, im2col {b}"
        );
    }
}

/// C1 or C2: batch 1 through `predict` and `predict_into`, then batch 64.
fn notes<M: Model>(c: &mut Criterion, group: &str, channels_first: bool) {
    let m: M = model(1);
    let mut base = BaseNotes::new(&m, channels_first);
    let x = values(M::INPUT_LEN, 7);
    let typed = M::Input::from_values(&x);
    let (mut into, mut scratch) = (M::new_output(), M::new_scratch());
    m.predict_into(&typed, &mut into, &mut scratch);
    assert_agree(group, m.predict(&typed).values(), base.predict(&x));
    assert_agree(
        &format!("{group} predict_into"),
        into.values(),
        base.predict(&x),
    );
    let xs = values(BATCH * M::INPUT_LEN, 11);
    let kiln_out = m.predict_batch(&xs).expect("batch");
    assert_agree(
        &format!("{group} batch"),
        &kiln_out,
        &base.predict_batch(&xs),
    );

    let mut g = c.benchmark_group(format!("{group} batch 1"));
    g.bench_function("kiln predict", |b| b.iter(|| m.predict(black_box(&typed))));
    g.bench_function("kiln predict_into", |b| {
        b.iter(|| m.predict_into(black_box(&typed), &mut into, &mut scratch))
    });
    g.bench_function("im2col", |b| b.iter(|| base.predict(black_box(&x)).len()));
    g.finish();

    let mut g = c.benchmark_group(format!("{group} batch {BATCH}"));
    g.sample_size(20);
    g.bench_function("kiln predict_batch", |b| {
        b.iter(|| m.predict_batch(black_box(&xs)).expect("batch"))
    });
    g.bench_function("im2col", |b| b.iter(|| base.predict_batch(black_box(&xs))));
    g.finish();
}

fn c1(c: &mut Criterion) {
    notes::<NotesConv>(c, "C1 Conv2D(64, 3, same) 32x32x3", false);
}

fn c2(c: &mut Criterion) {
    notes::<NotesConvTh>(c, "C2 Convolution2D th 3x32x32", true);
}

fn c3(c: &mut Criterion) {
    let m: SmallCnn = model(3);
    let mut base = BaseCnn::new(&m);
    let x = values(784, 7);
    let typed = <SmallCnn as Model>::Input::from_values(&x);
    let (mut into, mut scratch) = (SmallCnn::new_output(), SmallCnn::new_scratch());
    m.predict_into(&typed, &mut into, &mut scratch);
    let one = base.predict_batch(&x);
    assert_agree("C3", m.predict(&typed).values(), &one);
    assert_agree("C3 predict_into", into.values(), &one);
    let xs = values(BATCH * 784, 11);
    let kiln_out = m.predict_batch(&xs).expect("batch");
    assert_agree("C3 batch", &kiln_out, &base.predict_batch(&xs));
    let first = m.predict_slice(&xs[..784]).expect("sample");
    assert_agree("C3 batch sample 0", &kiln_out[..10], &first);

    let mut g = c.benchmark_group("C3 small CNN 28x28x1 batch 1");
    g.bench_function("kiln predict", |b| b.iter(|| m.predict(black_box(&typed))));
    g.bench_function("kiln predict_into", |b| {
        b.iter(|| m.predict_into(black_box(&typed), &mut into, &mut scratch))
    });
    g.bench_function("im2col", |b| b.iter(|| base.predict_batch(black_box(&x))));
    g.finish();

    let mut g = c.benchmark_group(format!("C3 small CNN 28x28x1 batch {BATCH}"));
    g.sample_size(20);
    g.bench_function("kiln predict_batch", |b| {
        b.iter(|| m.predict_batch(black_box(&xs)).expect("batch"))
    });
    g.bench_function("im2col", |b| b.iter(|| base.predict_batch(black_box(&xs))));
    g.finish();
}

fn c4(c: &mut Criterion) {
    let xs = values(BATCH * 784, 13);
    let labels = values(BATCH, 17);
    let mut ys = vec![0.0f32; BATCH * 10];
    for (row, l) in ys.chunks_exact_mut(10).zip(&labels) {
        row[((l + 1.0) * 5.0) as usize % 10] = 1.0;
    }
    let mut trainer = model::<SmallCnn>(4).compile(
        Adam::default(),
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    // One untimed step sizes the tensor pool.
    trainer.train_on_batch(&xs, &ys).expect("step");
    let mut g = c.benchmark_group(format!("C4 small CNN train_on_batch {BATCH}"));
    g.sample_size(20);
    g.bench_function("kiln", |b| {
        b.iter(|| trainer.train_on_batch(black_box(&xs), &ys).expect("step"))
    });
    g.finish();
}

fn config() -> Criterion {
    // Short runs: 0.5 s warm-up and 3 s of measurement per function, 50 samples (20 for
    // the batch-64 and training functions, which take milliseconds each).
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = conv;
    config = config();
    targets = c1, c2, c3, c4
}
criterion_main!(conv);
