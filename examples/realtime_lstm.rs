//! # An LSTM run one sample at a time, as an audio plugin runs it
//!
//! The real-time case: a host hands the plugin blocks of samples, and the network must
//! produce one output per input sample, carrying its recurrent state from one call to the
//! next, without allocating. In Keras terms the model is
//!
//! ```python
//! model = keras.Sequential([
//!     keras.Input(shape=(None, 1)),
//!     keras.layers.LSTM(32, return_sequences=True),
//!     keras.layers.Dense(1),
//! ])
//! ```
//!
//! (the shape RTNeural's benchmarks use; BENCHMARKS.md, "Streaming RNN step", times it).
//! `kiln::Streaming::step` takes one timestep and returns one output; the state lives in a
//! fixed-size value the caller owns (`new_state()`), so it can sit in the plugin's struct,
//! and `kiln::Reset::reset` starts it over (a transport stop, a new file). Feeding a
//! sequence step by step gives exactly what `predict_sequence` gives for the whole of it,
//! which is Keras's `predict` with `return_sequences = True`.
//!
//! A trained model would load its Keras weights first (`load_weights`, or
//! `#[weights = "..."]` to bake them into the binary); this example uses the seeded
//! initial weights.
//!
//! Run: `cargo run --release --example realtime_lstm`

use kiln::nalgebra::SVector;
use kiln::{Model, Reset, Streaming};

kiln::model! {
    /// LSTM(1 -> 32) + Dense(1) over any number of timesteps.
    Amp = Sequential([
        Input(shape = (None, 1)),
        LSTM(32, return_sequences = True),
        Dense(1),
    ]);
}

/// The plugin: the model (immutable, shareable) and the stream's state.
struct Plugin {
    model: Amp,
    state: <Amp as Streaming>::State,
}

impl Plugin {
    fn new() -> Self {
        let model = Amp::new(42);
        let state = model.new_state();
        Plugin { model, state }
    }

    /// The host's process callback: one output per input sample, no allocation.
    fn process(&mut self, input: &[f32], output: &mut [f32]) {
        for (x, y) in input.iter().zip(output.iter_mut()) {
            *y = self
                .model
                .step(&mut self.state, &SVector::<f32, 1>::new(*x))[0];
        }
    }
}

fn main() -> Result<(), kiln::Error> {
    let mut plugin = Plugin::new();
    // Four blocks of 256 samples of a decaying tone, as a host would deliver them.
    let signal: Vec<f32> = (0..1024)
        .map(|n| (n as f32 * 0.07).sin() * (-(n as f32) / 600.0).exp())
        .collect();
    let mut streamed = vec![0.0f32; signal.len()];
    let start = std::time::Instant::now();
    for (input, output) in signal.chunks(256).zip(streamed.chunks_mut(256)) {
        plugin.process(input, output);
    }
    let per_sample = start.elapsed().as_nanos() as f64 / signal.len() as f64;

    // Step by step is the whole sequence at once, bit for bit.
    let whole = plugin.model.predict_sequence(&signal)?;
    assert_eq!(whole, streamed);

    // A new stream starts from zeros again.
    plugin.state.reset();
    let mut again = vec![0.0f32; 256];
    plugin.process(&signal[..256], &mut again);
    assert_eq!(again, streamed[..256]);

    println!(
        "{} samples streamed through {} ({} parameters): {per_sample:.0} ns per sample",
        signal.len(),
        Amp::NAME,
        Amp::PARAM_COUNT
    );
    println!(
        "state: {} carried values, {} bytes in all; last outputs {:?}",
        <Amp as Streaming>::State::LEN,
        std::mem::size_of::<<Amp as Streaming>::State>(),
        &streamed[signal.len() - 3..]
    );
    Ok(())
}
