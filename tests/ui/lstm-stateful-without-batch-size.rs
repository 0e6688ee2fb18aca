fn main() {}

// Keras: "When using `stateful=True` in a RNN, the batch size must be static".
kiln::model! {
    Streaming = Sequential([
        Input(shape = (10, 3)),
        LSTM(8, stateful = True),
    ]);
}
