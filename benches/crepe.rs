//! A real conv net: CREPE `tiny` (tests/keras_import/crepe_tiny/, exported from Keras by
//! tools/make_crepe_fixture.py) in kiln beside the same network written by hand in nalgebra.
//!
//! Two groups, on the trained weights and the fixture's frames: one frame (`predict`,
//! `predict_into`, `predict_slice`; the baseline) and a batch of 64 frames (`predict_batch`;
//! the baseline). The baseline is channels last like kiln: each convolution is one
//! matrixmultiply GEMM `Wᵀ (filters x k·channels) · X` where `X`'s columns are windows of the
//! zero-padded input read in place (a strided view, no im2col copy), then bias, relu, the
//! batch normalization folded into `x · inv + res`, and the (2, 1) max-pool; the classifier
//! is one GEMM for the whole batch. Before timing, kiln is checked against Keras's outputs
//! and the baseline against kiln.
//!
//! Run with `RUSTFLAGS="-C target-cpu=native" cargo bench --bench crepe`; results are in
//! BENCHMARKS.md ("A real conv net: CREPE tiny"), beside Keras's own times
//! (`python3 tools/make_crepe_fixture.py --time`).

use criterion::{criterion_group, criterion_main, Criterion};
use kiln::{Model, Tensor};
use nalgebra::{DMatrix, DMatrixView, DVector};
use std::hint::black_box;
use std::time::Duration;

mod crepe {
    include!("../tests/keras_import/crepe_tiny/model.rs");
}
use crepe::CrepeTiny;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keras_import/crepe_tiny");
const BATCH: usize = 64;

/// One `Conv2D((k, 1), relu) -> BatchNormalization -> MaxPooling2D((2, 1))` block.
struct Block {
    /// `Wᵀ`: `filters x (k · channels)`; Keras's `(k, 1, channels, filters)` kernel in
    /// row-major order is this matrix in column-major order.
    w: DMatrix<f32>,
    bias: Vec<f32>,
    /// The batch normalization as Keras computes it: `x · inv + res`, `inv = gamma /
    /// sqrt(variance + epsilon)`, `res = beta - mean · inv`.
    inv: Vec<f32>,
    res: Vec<f32>,
    kernel: usize,
    stride: usize,
    channels: usize,
}

impl Block {
    fn from_model(m: &CrepeTiny, i: usize, kernel: usize, stride: usize) -> Self {
        let get = |name: String| m.get_weight(&name).expect("a CREPE weight");
        let w = get(format!("conv{i}/kernel"));
        let bias = get(format!("conv{i}/bias"));
        let filters = bias.len();
        let channels = w.len() / (kernel * filters);
        let (gamma, beta) = (
            get(format!("conv{i}-BN/gamma")),
            get(format!("conv{i}-BN/beta")),
        );
        let mean = get(format!("conv{i}-BN/moving_mean"));
        let variance = get(format!("conv{i}-BN/moving_variance"));
        let inv: Vec<f32> = gamma
            .iter()
            .zip(&variance)
            .map(|(g, v)| g / (v + 1e-3).sqrt())
            .collect();
        let res = beta
            .iter()
            .zip(&mean)
            .zip(&inv)
            .map(|((b, m), i)| b - m * i)
            .collect();
        Block {
            w: DMatrix::from_column_slice(filters, kernel * channels, &w),
            bias,
            inv,
            res,
            kernel,
            stride,
            channels,
        }
    }

    /// `x`: `(steps, channels)` row-major; returns `(steps / stride / 2, filters)`.
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let (c, k, s) = (self.channels, self.kernel, self.stride);
        let steps = x.len() / c;
        let out = steps.div_ceil(s);
        // Keras's "same": the odd padding value goes after.
        let total = ((out - 1) * s + k).saturating_sub(steps);
        let before = total / 2;
        let mut padded = vec![0.0f32; (steps + total) * c];
        padded[before * c..][..x.len()].copy_from_slice(x);
        let windows = DMatrixView::from_slice_with_strides(&padded, k * c, out, 1, s * c);
        let mut y = &self.w * windows;
        for mut column in y.column_iter_mut() {
            for (f, v) in column.iter_mut().enumerate() {
                let r = (*v + self.bias[f]).max(0.0);
                *v = r * self.inv[f] + self.res[f];
            }
        }
        let filters = self.bias.len();
        let mut pooled = vec![0.0f32; out / 2 * filters];
        for (t, row) in pooled.chunks_mut(filters).enumerate() {
            let (a, b) = (y.column(2 * t), y.column(2 * t + 1));
            for (f, p) in row.iter_mut().enumerate() {
                *p = a[f].max(b[f]);
            }
        }
        pooled
    }
}

/// CREPE tiny by hand: six blocks, then `Dense(360, sigmoid)` (Permute((2, 1, 3)) of a
/// `(4, 1, 64)` tensor and Flatten keep the row-major order, so they are no-ops here).
struct Baseline {
    blocks: Vec<Block>,
    w: DMatrix<f32>,
    b: DVector<f32>,
}

impl Baseline {
    fn from_model(m: &CrepeTiny) -> Self {
        let blocks = (1..=6)
            .map(|i| {
                Block::from_model(
                    m,
                    i,
                    if i == 1 { 512 } else { 64 },
                    if i == 1 { 4 } else { 1 },
                )
            })
            .collect();
        let k = m.get_weight("classifier/kernel").expect("kernel");
        let b = m.get_weight("classifier/bias").expect("bias");
        Baseline {
            blocks,
            w: DMatrix::from_column_slice(360, 256, &k),
            b: DVector::from_column_slice(&b),
        }
    }

    fn features(&self, frame: &[f32]) -> Vec<f32> {
        self.blocks
            .iter()
            .fold(frame.to_vec(), |x, block| block.forward(&x))
    }

    /// A row-major `(batch, 1024)` slice to a row-major `(batch, 360)` vector.
    fn predict_batch(&self, xs: &[f32]) -> Vec<f32> {
        let features: Vec<f32> = xs.chunks(1024).flat_map(|f| self.features(f)).collect();
        let h = DMatrix::from_column_slice(256, xs.len() / 1024, &features);
        let mut y = &self.w * h;
        for mut column in y.column_iter_mut() {
            column += &self.b;
            column.apply(|v| *v = 1.0 / (1.0 + (-*v).exp()));
        }
        y.data.into()
    }
}

fn assert_agree(what: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{what}: output lengths");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-4 * e.abs(),
            "{what}: output {i}: {a}, expected {e}"
        );
    }
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn crepe(c: &mut Criterion) {
    let text = std::fs::read_to_string(format!("{DIR}/cases.json")).expect("cases.json");
    let case: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let mut m = CrepeTiny::new(0);
    m.load_weights(format!("{DIR}/weights.safetensors"))
        .expect("weights");
    let base = Baseline::from_model(&m);
    assert_agree("kiln vs Keras", &m.predict_batch(&x).expect("batch"), &y);
    assert_agree("nalgebra vs Keras", &base.predict_batch(&x), &y);

    // The 440 Hz sine frame (the last one), and 64 frames: the fixture's 8, eight times.
    let frame = &x[x.len() - 1024..];
    let typed = Box::new(<CrepeTiny as Model>::Input::from_values(frame));
    let xs: Vec<f32> = x.iter().copied().cycle().take(BATCH * 1024).collect();
    let (mut out, mut scratch) = (CrepeTiny::new_output(), CrepeTiny::new_scratch());

    let mut g = c.benchmark_group("CREPE tiny, one frame");
    g.bench_function("kiln predict", |b| b.iter(|| m.predict(black_box(&typed))));
    g.bench_function("kiln predict_into", |b| {
        b.iter(|| m.predict_into(black_box(&typed), &mut out, &mut scratch))
    });
    g.bench_function("kiln predict_slice", |b| {
        b.iter(|| m.predict_slice(black_box(frame)).expect("frame"))
    });
    g.bench_function("nalgebra", |b| {
        b.iter(|| base.predict_batch(black_box(frame)))
    });
    g.finish();

    let mut g = c.benchmark_group("CREPE tiny, batch 64");
    g.bench_function("kiln predict_batch", |b| {
        b.iter(|| m.predict_batch(black_box(&xs)).expect("batch"))
    });
    g.bench_function("nalgebra", |b| {
        b.iter(|| base.predict_batch(black_box(&xs)))
    });
    g.finish();
}

fn config() -> Criterion {
    // Short runs, as benches/dense.rs: about half a minute for the whole bench.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = crepe
}
criterion_main!(benches);
