fn main() {}

kiln::model! {
    Tagger = Sequential([
        Input(shape = (None, 3)),
        Bidirectional(LSTM(4, return_sequences = True)),
        Dense(2),
    ]);
}
