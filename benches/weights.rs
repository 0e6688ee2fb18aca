//! Loading the W3 model's weights (784-256-128-10, 235,146 values, 940 KB) from safetensors
//! bytes: kiln's `load_weights_from_bytes` (parse the header, check names, shapes, dtypes and
//! that every value is finite, then copy) beside a hand-written baseline that only parses
//! the header and copies each tensor's little-endian values into the model's memory, with no
//! checks. The difference is what kiln's checks cost.
//!
//! Run with `cargo bench --bench weights` (and with `RUSTFLAGS="-C target-cpu=native"`);
//! results are in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion};
use kiln::Model;
use safetensors::SafeTensors;
use std::hint::black_box;
use std::time::Duration;

kiln::model! {
    W3 = Sequential([
        Input(shape = (784,)),
        Dense(256, activation = "relu"),
        Dense(128, activation = "relu"),
        Dense(10, activation = "softmax"),
    ]);
}

/// The baseline: parse, then copy each tensor's values into a buffer of the model's size.
fn copy_only(bytes: &[u8], out: &mut [Vec<f32>]) {
    let file = SafeTensors::deserialize(bytes).expect("valid file");
    for (name, buffer) in W3::WEIGHT_NAMES.iter().zip(out.iter_mut()) {
        let tensor = file.tensor(name).expect("tensor");
        for (v, b) in buffer.iter_mut().zip(tensor.data().chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
}

fn load(c: &mut Criterion) {
    let bytes = W3::new(1).weights_to_bytes();
    let mut model = W3::new(2);
    let mut buffers: Vec<Vec<f32>> = W3::WEIGHT_SHAPES
        .iter()
        .map(|s| vec![0.0; s.iter().product()])
        .collect();
    copy_only(&bytes, &mut buffers);
    model.load_weights_from_bytes(&bytes).expect("loads");
    for (name, buffer) in W3::WEIGHT_NAMES.iter().zip(&buffers) {
        assert_eq!(model.get_weight(name).ok().as_ref(), Some(buffer));
    }

    let mut group = c.benchmark_group("load W3");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    group.bench_function("kiln load_weights_from_bytes", |b| {
        b.iter(|| model.load_weights_from_bytes(black_box(&bytes)))
    });
    group.bench_function("hand-written parse + copy", |b| {
        b.iter(|| copy_only(black_box(&bytes), &mut buffers))
    });
    group.bench_function("kiln weights_to_bytes", |b| {
        b.iter(|| black_box(&model).weights_to_bytes())
    });
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
