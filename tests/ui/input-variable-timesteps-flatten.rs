fn main() {}

kiln::model! {
    Tagger = Sequential([
        Input(shape = (None, 3)),
        LSTM(4, return_sequences = True),
        Flatten(),
        Dense(2),
    ]);
}
