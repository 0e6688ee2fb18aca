//! # Permute
//!
//! `Permute((2, 1))` swaps the two axes of each sample: a sequence of 10 steps with 64
//! features, `(10, 64)`, becomes 64 channels of 10 steps, `(64, 10)`. A Keras `Dense` acts
//! on the last axis, so after the swap it mixes the time steps instead of the features.
//!
//! `dims` are 1-based and never name the batch axis, as in Keras; `Permute((1, 0))` or
//! `Permute((2, 2))` are compile errors that say which index is wrong. Unlike `Reshape`, a
//! permutation moves values, so it runs a small kernel; on a batch the same kernel runs over
//! every sample.
//!
//! Run with `cargo run --example permute`.

use kiln::Model;

kiln::model! {
    /// Transposes each (time, feature) sample to (feature, time).
    pub TimeMajorToFeatureMajor = Sequential([
        Input(shape = (10, 64)),
        Permute((2, 1)),
    ]);
}

fn main() -> Result<(), kiln::Error> {
    println!("{}", TimeMajorToFeatureMajor::summary());

    let model = TimeMajorToFeatureMajor::new(0);
    // x[t][f] = t + f / 100, so every value says where it came from.
    let (steps, features) = (10, 64);
    let x: Vec<f32> = (0..steps * features)
        .map(|i| (i / features) as f32 + (i % features) as f32 / 100.0)
        .collect();
    let y = model.predict_slice(&x)?;

    // y[f][t] == x[t][f]: feature 3 over all 10 steps.
    let feature = 3;
    println!(
        "y[{feature}] = {:?}",
        &y[feature * steps..(feature + 1) * steps]
    );
    for t in 0..steps {
        assert_eq!(y[feature * steps + t], x[t * features + feature]);
    }

    // Three samples at once give the same numbers as one at a time.
    let batch: Vec<f32> = x.iter().chain(&x).chain(&x).copied().collect();
    let ys = model.predict_batch(&batch)?;
    assert!(ys
        .chunks(steps * features)
        .all(|sample| sample == y.as_slice()));
    println!("batch of 3: {} values, each sample transposed", ys.len());
    Ok(())
}
