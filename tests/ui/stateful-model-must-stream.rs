fn main() {}

// A stateful layer's state is carried one timestep at a time: every layer must have a
// one-timestep form, and `go_backwards` or `Flatten` do not.
kiln::model! {
    Backwards = Sequential([
        Input(batch_shape = (4, 10, 3)),
        GRU(8, stateful = True, go_backwards = True),
    ]);
    Flattened = Sequential([
        Input(batch_shape = (4, 10, 3)),
        SimpleRNN(8, stateful = True, return_sequences = True),
        Flatten(),
        Dense(1),
    ]);
    InBidirectional = Sequential([
        Input(batch_shape = (4, 10, 3)),
        Bidirectional(LSTM(8, stateful = True)),
    ]);
}
