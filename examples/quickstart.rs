//! # Quickstart
//!
//! Declare a model the way you would in Keras, print its summary, and run one sample.
//! Run with `cargo run --example quickstart`.

use kiln::Model;

kiln::model! {
    /// Classifies 8x8 digit images (64 pixel intensities) into 10 classes.
    pub Digits = Sequential([
        Input(shape = (64,)),
        Dense(128, activation = "relu"),
        Dense(10, activation = "softmax"),
    ]);
}

fn main() -> Result<(), kiln::Error> {
    // Weights start as Keras starts them (glorot_uniform kernels, zero biases), seeded.
    let model = Digits::new(42);
    println!("{}", Digits::summary());

    // One sample, row-major: a gradient image from 0 to 1.
    let pixels: Vec<f32> = (0..64).map(|i| i as f32 / 63.0).collect();
    let probabilities = model.predict_slice(&pixels)?;
    let (best, p) =
        probabilities.iter().enumerate().fold(
            (0, f32::MIN),
            |acc, (i, &p)| if p > acc.1 { (i, p) } else { acc },
        );
    println!("class probabilities: {probabilities:.3?}");
    println!("most likely class: {best} (p = {p:.3})");
    Ok(())
}
