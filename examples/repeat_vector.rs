//! # RepeatVector
//!
//! `RepeatVector(3)` turns one vector into a sequence of three copies of it: a `Dense(32)`
//! encoding `(32,)` becomes `(3, 32)`. This is how a Keras encoder-decoder hands one summary
//! vector to every step of its decoder. The `Dense(4)` after it acts on the last axis, so it
//! maps each of the three steps to 4 outputs; here the steps are identical copies, so the
//! three output rows are too.
//!
//! `RepeatVector` needs a rank-1 input; give it a sequence (say the `(10, 16)` output of a
//! `Dense` on a sequence) and the compile error names the rank and the layer that produced
//! it, and suggests `Flatten()`.
//!
//! Run with `cargo run --example repeat_vector`.

use kiln::Model;

kiln::model! {
    /// Encodes 8 features into 32, then decodes 3 steps of 4 values each.
    pub RepeatDecoder = Sequential([
        Input(shape = (8,)),
        Dense(32, activation = "relu"),
        RepeatVector(3),
        Dense(4),
    ]);
}

fn main() -> Result<(), kiln::Error> {
    println!("{}", RepeatDecoder::summary());

    // Keras-style initial weights (glorot_uniform kernels, zero biases), seeded.
    let model = RepeatDecoder::new(7);
    let x = [0.5, -1.0, 0.25, 2.0, 0.0, -0.5, 1.5, 1.0];
    let y = model.predict_slice(&x)?;

    let [steps, units] = [3, 4];
    assert_eq!(RepeatDecoder::OUTPUT_SHAPE, &[steps, units]);
    for (step, row) in y.chunks(units).enumerate() {
        println!("step {step}: {row:.4?}");
    }
    assert!(
        y.chunks(units).all(|row| row == &y[..units]),
        "every step sees the same vector"
    );
    Ok(())
}
