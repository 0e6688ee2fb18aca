//! One training epoch of the digits model (64 -> 128 relu -> 64 relu -> 10 softmax, Adam,
//! sparse categorical cross-entropy, batch 32, 1,437 samples) in kiln, beside the same epoch
//! written by hand with nalgebra `DMatrix` GEMMs (forward, backward and Adam spelled out).
//! Keras (JAX) and PyTorch times for the same epoch come from `tools/bench_fit.py`.
//!
//! Beside them, in the same run, the peak probe of `benches/probes`: registers-only fused
//! multiply-adds of the epoch's FLOP count (the multiply-adds of its GEMMs), so the kiln row
//! over the probe row is the epoch's distance from one core's arithmetic peak.
//!
//! Then two probes of where the epoch's floor lies (Adam's correctly rounded square roots and
//! divisions against the GEMMs' multiply-adds): one step's products and Adam one after the
//! other and interleaved between blocks of the products, and Adam fused into a
//! weight-gradient kernel's tiles.
//!
//! Run with `cargo bench --bench fit` (default build) and `RUSTFLAGS="-C target-cpu=native"
//! cargo bench --bench fit`; results are in BENCHMARKS.md.

mod probes;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kiln::{Adam, FitOptions, Loss, Model, Trainer};
use nalgebra::DMatrix;
use std::hint::black_box;
use std::time::Duration;

kiln::model! {
    DigitNet = Sequential([
        Input(shape = (64,)),
        Dense(128, activation = "relu"),
        Dense(64, activation = "relu"),
        Dense(10, activation = "softmax"),
    ]);
}

const BATCH: usize = 32;

/// The training split of the digits example (pixels scaled to 0..1, labels as f32).
fn digits() -> (Vec<f32>, Vec<f32>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/digits/digits.csv"
    );
    let text = std::fs::read_to_string(path).expect("digits.csv ships with the repository");
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in text.lines().take(1437) {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.parse().expect("a number"))
            .collect();
        x.extend(values[..64].iter().map(|p| p / 16.0));
        y.push(values[64]);
    }
    (x, y)
}

/// A dense layer's parameters and Adam moments, by hand.
struct HandLayer {
    w: DMatrix<f32>,
    b: DMatrix<f32>,
    m: [DMatrix<f32>; 2],
    v: [DMatrix<f32>; 2],
}

impl HandLayer {
    fn from(model: &DigitNet, name: &str, inputs: usize, units: usize) -> HandLayer {
        // Keras kernel (inputs, units) row-major == W (units x inputs) column-major.
        let kernel = model.get_weight(&format!("{name}/kernel")).expect("kernel");
        let bias = model.get_weight(&format!("{name}/bias")).expect("bias");
        let zeros = |r, c| DMatrix::<f32>::zeros(r, c);
        HandLayer {
            w: DMatrix::from_column_slice(units, inputs, &kernel),
            b: DMatrix::from_column_slice(units, 1, &bias),
            m: [zeros(units, inputs), zeros(units, 1)],
            v: [zeros(units, inputs), zeros(units, 1)],
        }
    }

    fn forward(&self, x: &DMatrix<f32>) -> DMatrix<f32> {
        let mut z = &self.w * x;
        for mut column in z.column_iter_mut() {
            column += self.b.column(0);
        }
        z
    }
}

/// Keras's Adam on one tensor, written out.
fn adam(
    p: &mut DMatrix<f32>,
    g: &DMatrix<f32>,
    m: &mut DMatrix<f32>,
    v: &mut DMatrix<f32>,
    t: i32,
) {
    let (lr, b1, b2, eps) = (0.001f32, 0.9f32, 0.999f32, 1e-7f32);
    let alpha = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
    for (((p, g), m), v) in p
        .iter_mut()
        .zip(g.iter())
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        *m += (g - *m) * (1.0 - b1);
        *v += (g * g - *v) * (1.0 - b2);
        *p -= alpha * *m / (v.sqrt() + eps);
    }
}

/// One epoch by hand: the same batches (in file order), forward, fused softmax +
/// cross-entropy gradient, backward through relu and the three dense layers, Adam.
fn hand_epoch(layers: &mut [HandLayer; 3], x: &[f32], y: &[f32], step: &mut i32) {
    let n = y.len();
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let xb = DMatrix::from_column_slice(64, end - start, &x[start * 64..end * 64]);
        let z1 = layers[0].forward(&xb);
        let a1 = z1.map(|v| v.max(0.0));
        let z2 = layers[1].forward(&a1);
        let a2 = z2.map(|v| v.max(0.0));
        let mut p = layers[2].forward(&a2);
        for mut column in p.column_iter_mut() {
            let max = column.max();
            column.apply(|v| *v = (*v - max).exp());
            let sum = column.sum();
            column /= sum;
        }
        let rows = (end - start) as f32;
        let mut dz3 = p;
        for (j, &label) in y[start..end].iter().enumerate() {
            dz3[(label as usize, j)] -= 1.0;
        }
        dz3 /= rows;
        let grads3 = (&dz3 * a2.transpose(), dz3.column_sum());
        let dz2 = (layers[2].w.transpose() * &dz3).component_mul(&z2.map(|v| f32::from(v > 0.0)));
        let grads2 = (&dz2 * a1.transpose(), dz2.column_sum());
        let dz1 = (layers[1].w.transpose() * &dz2).component_mul(&z1.map(|v| f32::from(v > 0.0)));
        let grads1 = (&dz1 * xb.transpose(), dz1.column_sum());
        *step += 1;
        for (layer, (gw, gb)) in layers.iter_mut().zip([grads1, grads2, grads3]) {
            let HandLayer { w, b, m, v } = layer;
            let [mw, mb] = m;
            let [vw, vb] = v;
            adam(w, &gw, mw, vw, *step);
            adam(
                b,
                &DMatrix::from_column_slice(gb.len(), 1, gb.as_slice()),
                mb,
                vb,
                *step,
            );
        }
    }
}

/// A fresh kiln trainer and the same network by hand (same initial weights), each after
/// one epoch: a timed epoch is always the second of a training run, as in
/// `tools/bench_fit.py`. Timing epoch after epoch of one long run instead drifts upward
/// (1.31 -> 1.38 ms over 5,000 epochs), gone with flush-to-zero: subnormals pile up
/// (BENCHMARKS.md, "Training").
fn after_one_epoch(
    x: &[f32],
    y: &[f32],
    options: &FitOptions,
) -> (Trainer<DigitNet, Adam>, [HandLayer; 3], i32) {
    let model = DigitNet::new(0);
    let mut hand = [
        HandLayer::from(&model, "dense", 64, 128),
        HandLayer::from(&model, "dense_1", 128, 64),
        HandLayer::from(&model, "dense_2", 64, 10),
    ];
    let mut trainer = model.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    );
    let mut step = 0;
    trainer.fit(x, y, options).expect("fit");
    hand_epoch(&mut hand, x, y, &mut step);
    (trainer, hand, step)
}

fn fit_epoch(c: &mut Criterion) {
    let (x, y) = digits();
    // No shuffling on either side, so both see the same batches; check they agree once.
    let options = FitOptions {
        epochs: 1,
        batch_size: BATCH,
        shuffle: false,
        verbose: false,
        ..FitOptions::default()
    };
    let (mut trainer, mut hand, mut step) = after_one_epoch(&x, &y, &options);
    trainer.fit(&x, &y, &options).expect("fit");
    hand_epoch(&mut hand, &x, &y, &mut step);
    let kernel = trainer
        .model()
        .get_weight("dense_2/kernel")
        .expect("kernel");
    let max_diff = kernel
        .iter()
        .zip(hand[2].w.as_slice())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff < 1e-4,
        "kiln and the hand-written epoch disagree by {max_diff}"
    );

    // Per sample: the forward products and the weight gradients (64·128 + 128·64 + 64·10
    // multiply-adds each), and the input gradients of the second and third layers (the
    // first layer's is not computed); two FLOPs per multiply-add.
    let per_sample = 2 * (64 * 128 + 128 * 64 + 64 * 10) + (128 * 64 + 64 * 10);
    let flops = 2 * (per_sample * (x.len() / 64)) as u64;
    let iterations = probes::fma_iterations_for(flops);
    eprintln!(
        "fit epoch: {flops} FLOP in its GEMMs; peak probe {} FLOP on {:?}",
        probes::fma_flops(iterations),
        kiln::isa::isa()
    );
    let mut group = c.benchmark_group("fit epoch, digits 64-128-64-10, batch 32");
    group.throughput(Throughput::Elements(flops));
    group.bench_function("probe: FMA peak, same FLOPs", |b| {
        b.iter(|| probes::fma(black_box(iterations), black_box(1.0)))
    });
    group.bench_function("kiln", |b| {
        b.iter_batched(
            || after_one_epoch(&x, &y, &options).0,
            |mut trainer| black_box(trainer.fit(black_box(&x), black_box(&y), &options)),
            BatchSize::PerIteration,
        )
    });
    let two_threads = FitOptions {
        threads: 2,
        ..options.clone()
    };
    group.bench_function("kiln, 2 threads", |b| {
        b.iter_batched(
            || after_one_epoch(&x, &y, &options).0,
            |mut trainer| black_box(trainer.fit(black_box(&x), black_box(&y), &two_threads)),
            BatchSize::PerIteration,
        )
    });
    // Five epochs per `fit` call (time per call; divide by 5): the workers start once per
    // call, as Keras's epochs inside one `fit` share its setup.
    let five_epochs = FitOptions {
        epochs: 5,
        ..two_threads.clone()
    };
    group.bench_function("kiln, 2 threads, 5 epochs per fit call", |b| {
        b.iter_batched(
            || after_one_epoch(&x, &y, &options).0,
            |mut trainer| black_box(trainer.fit(black_box(&x), black_box(&y), &five_epochs)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("nalgebra by hand", |b| {
        b.iter_batched(
            || {
                let (_, hand, step) = after_one_epoch(&x, &y, &options);
                (hand, step)
            },
            |(mut hand, mut step)| {
                hand_epoch(&mut hand, black_box(&x), black_box(&y), &mut step);
                hand
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    // A larger batch gives each thread more work per hand-off.
    let mut group = c.benchmark_group("fit epoch, digits 64-128-64-10, batch 128");
    for threads in [1, 2] {
        let options = FitOptions {
            batch_size: 128,
            threads,
            ..options.clone()
        };
        group.bench_function(format!("kiln, {threads} thread(s)"), |b| {
            b.iter_batched(
                || after_one_epoch(&x, &y, &options).0,
                |mut trainer| black_box(trainer.fit(black_box(&x), black_box(&y), &options)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Would Adam's update hide under the GEMMs if the two were interleaved? One step's products
/// (`probes::DigitsStep`) and Adam over the model's 17,226 weights (`probes::adam_avx2`),
/// one after the other, and interleaved: the products cut into blocks of 12 output columns,
/// an equal share of Adam's weights updated after each block (BENCHMARKS.md, "Fourth
/// session of 2026-12-06").
#[cfg(target_arch = "x86_64")]
fn adam_beside_gemms(c: &mut Criterion) {
    const WEIGHTS: usize = 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10;
    const BLOCK: usize = 12;
    if !std::is_x86_feature_detected!("avx2") {
        return;
    }
    let mut step = probes::DigitsStep::new();
    let (g, mut p) = (probes::values(WEIGHTS, 2), probes::values(WEIGHTS, 1));
    let (mut m, mut v) = (vec![0.0f32; WEIGHTS], vec![0.01f32; WEIGHTS]);
    let mut count = 0usize;
    step.products(BLOCK, &mut || count += 1);
    let chunk = WEIGHTS.div_ceil(count).next_multiple_of(8);
    let mut group = c.benchmark_group("training step: Adam beside the GEMMs");
    // SAFETY (every `adam_avx2` call): the CPU has AVX2, checked above.
    group.bench_function("GEMMs", |b| {
        b.iter(|| step.products(usize::MAX, &mut || {}))
    });
    group.bench_function(format!("GEMMs in blocks of {BLOCK} columns"), |b| {
        b.iter(|| step.products(BLOCK, &mut || {}))
    });
    group.bench_function("Adam", |b| {
        b.iter(|| unsafe { probes::adam_avx2(&mut p, &g, &mut m, &mut v) })
    });
    group.bench_function("GEMMs, then Adam", |b| {
        b.iter(|| {
            step.products(usize::MAX, &mut || {});
            unsafe { probes::adam_avx2(&mut p, &g, &mut m, &mut v) }
        })
    });
    group.bench_function(
        format!("interleaved ({count} blocks, {chunk} weights each)"),
        |b| {
            b.iter(|| {
                let mut at = 0;
                step.products(BLOCK, &mut || {
                    let end = (at + chunk).min(WEIGHTS);
                    let (p, m, v) = (&mut p[at..end], &mut m[at..end], &mut v[at..end]);
                    unsafe { probes::adam_avx2(p, &g[at..end], m, v) };
                    at = end;
                });
            })
        },
    );
    group.finish();

    // The finest grain: Adam fused into layer 1's weight-gradient kernel.
    if !std::is_x86_feature_detected!("avx512f") {
        return;
    }
    let mut state = probes::FusedState::new();
    let mut group =
        c.benchmark_group("weight gradient 128x64 (batch 32): Adam fused into the tiles");
    // SAFETY (each call): the CPU has AVX-512F, checked above.
    for (label, adam, fused) in [
        ("product", false, false),
        ("product, then Adam", true, false),
        ("Adam fused", true, true),
    ] {
        group.bench_function(label, |b| {
            b.iter(|| unsafe { probes::weight_gradient_and_adam(&mut state, adam, fused) })
        });
    }
    group.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn adam_beside_gemms(_: &mut Criterion) {}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30)
}

criterion_group! {
    name = fit;
    config = config();
    targets = fit_epoch, adam_beside_gemms
}
criterion_main!(fit);
