//! # The notes' convolution, in Keras 1's own words
//!
//! The seed notes write a convolution the way Keras 1 did:
//!
//! ```python
//! model.add(Convolution2D(64, 3, 3, border_mode="same", input_shape=(3, 32, 32), dim_ordering="th"))
//! # now: model.output_shape == (None, 64, 32, 32)
//! model.add(Flatten())
//! # now: model.output_shape == (None, 65536)
//! ```
//!
//! kiln takes that spelling as it is: `nb_filter, nb_row, nb_col` positional,
//! `border_mode` for `padding`, `dim_ordering = "th"` for channels first. It builds the
//! layer Keras 2 and 3 build from it, a `Conv2D(64, (3, 3), padding = "same",
//! data_format = "channels_first")` named `conv2d`, whose kernel `conv2d/kernel` has Keras
//! 3's layout `(3, 3, 3, 64)`.
//!
//! `Flatten()` then flattens the `(64, 32, 32)` output in its own order, channel by channel,
//! as Keras 1's `Flatten` did and as Keras 3's does: its `data_format` defaults to
//! channels last, which for `Flatten` means "take the values as they lie".
//!
//! The typed `predict` keeps every tensor on the stack (a 256 KiB output, and its flattened
//! copy): the summary prints the bound. In a debug build that is more than a test thread's
//! 2 MiB, so the prediction runs on `main`'s thread (8 MiB).
//!
//! Run with `cargo run --example notes_conv2d`.

use kiln::{Model, Tensor};

kiln::model! {
    /// The notes' model: one Keras 1 convolution, then `Flatten`.
    pub Notes = Sequential([
        Convolution2D(64, 3, 3, border_mode = "same", input_shape = (3, 32, 32), dim_ordering = "th"),
        Flatten(),
    ]);
}

fn main() {
    println!("{}", Notes::summary());
    for layer in Notes::LAYERS {
        let dims: Vec<String> = layer.output_shape.iter().map(|d| d.to_string()).collect();
        println!("{}: (None, {})", layer.name, dims.join(", "));
    }
    assert_eq!(Notes::LAYERS[0].output_shape, &[64, 32, 32]);
    assert_eq!(Notes::OUTPUT_SHAPE, &[65536]);
    assert_eq!(Notes::WEIGHT_NAMES, &["conv2d/kernel", "conv2d/bias"]);

    // One image: each channel a different ramp.
    let model = Notes::new(7);
    let x: Vec<f32> = (0..3 * 32 * 32)
        .map(|i| ((i % 32) as f32 / 31.0) * (1.0 + (i / 1024) as f32))
        .collect();
    let y = model.predict(&<Notes as Model>::Input::from_values(&x));
    let values = y.values();
    println!(
        "predicted {} values; filter 0 starts {:?}",
        values.len(),
        &values[..4]
    );
    // The flattened output is filter-major: the first 1024 values are filter 0's plane.
    let slice = model.predict_slice(&x).expect("predict_slice");
    assert_eq!(slice.as_slice(), values);
}
