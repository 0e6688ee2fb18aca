//! # The notes' masked LSTM, as written
//!
//! The seed notes (Keras's `Masking` documentation) skip two timesteps of every sequence:
//!
//! ```python
//! samples, timesteps, features = 32, 10, 8
//! inputs = np.random.random([samples, timesteps, features]).astype(np.float32)
//! inputs[:, 3, :] = 0.
//! inputs[:, 5, :] = 0.
//!
//! model = keras.models.Sequential()
//! model.add(keras.layers.Masking(mask_value=0., input_shape=(timesteps, features)))
//! model.add(keras.layers.LSTM(32))
//! output = model(inputs)
//! # The time step 3 and 5 will be skipped from LSTM calculation.
//! ```
//!
//! kiln takes the two layers as they are. `Masking` marks the timesteps whose 8 features
//! all equal 0; the LSTM, as Keras 3's does, leaves its state untouched at those steps, so
//! the output is the one of the 8 remaining steps. The LSTM's weights are named as in Keras
//! 3, under its cell: `lstm/lstm_cell/kernel` `(8, 128)`, `.../recurrent_kernel`
//! `(32, 128)` and `.../bias` `(128,)`, gates `i, f, c, o`.
//!
//! The example checks the skipping: moving the two masked steps to the front of the
//! sequence gives the same output (a masked step changes nothing, wherever it is), and a
//! sequence masked everywhere gives zeros, as in Keras. `tests/recurrent.rs` checks this
//! model against Keras's own numbers.
//!
//! Run with `cargo run --example notes_masking_lstm`.

use kiln::{Model, Tensor};

const TIMESTEPS: usize = 10;
const FEATURES: usize = 8;

kiln::model! {
    /// The notes' model: `Masking` then `LSTM(32)`.
    pub Notes = Sequential([
        Masking(mask_value = 0., input_shape = (10, 8)),
        LSTM(32),
    ]);
}

fn main() {
    println!("{}", Notes::summary());
    assert_eq!(
        Notes::WEIGHT_NAMES,
        &[
            "lstm/lstm_cell/kernel",
            "lstm/lstm_cell/recurrent_kernel",
            "lstm/lstm_cell/bias"
        ]
    );
    let model = Notes::new(7);

    // One sequence of values in [0, 1) (a small deterministic generator), steps 3 and 5
    // zeroed as in the notes.
    let mut state = 0x2545_f491_u32;
    let mut random = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 8) as f32 / (1u32 << 24) as f32
    };
    let mut inputs: Vec<f32> = (0..TIMESTEPS * FEATURES).map(|_| random()).collect();
    for step in [3, 5] {
        inputs[step * FEATURES..(step + 1) * FEATURES].fill(0.0);
    }
    let output = model.predict(&<Notes as Model>::Input::from_values(&inputs));
    println!("output (32 values): {:?}", &output.values()[..4]);

    // Skipped means skipped: move the two masked steps to the front, keeping the order of
    // the others, and the output does not change.
    let mut moved = vec![0.0; 2 * FEATURES];
    for step in (0..TIMESTEPS).filter(|s| ![3, 5].contains(s)) {
        moved.extend_from_slice(&inputs[step * FEATURES..(step + 1) * FEATURES]);
    }
    let same = model.predict(&<Notes as Model>::Input::from_values(&moved));
    let diff = output
        .values()
        .iter()
        .zip(same.values())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("steps 3 and 5 moved to the front: largest difference {diff:e}");
    assert!(diff < 1e-6);

    // A sequence masked everywhere: the LSTM never steps, and outputs its zero state.
    let silent = model.predict(&<Notes as Model>::Input::from_values(
        &[0.0; TIMESTEPS * FEATURES],
    ));
    assert!(silent.values().iter().all(|v| *v == 0.0));
    println!("a fully masked sequence gives zeros");
}
