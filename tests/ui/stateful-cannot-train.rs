use kiln::{Loss, Model, Sgd};

// Keras's `fit` carries a stateful layer's state from batch to batch; kiln does not train
// stateful models (yet), and says so where `compile` is called.
kiln::model! {
    Streaming = Sequential([
        Input(batch_shape = (1, None, 3)),
        LSTM(8, stateful = True, return_sequences = True),
        Dense(1),
    ]);
}

fn main() {
    // Prediction and streaming work; training does not compile.
    let _ = Streaming::new(0).predict_sequence(&[0.0; 6]);
    let _trainer = Streaming::new(0).compile(Sgd::default(), Loss::MeanSquaredError);
}
