fn main() {}

kiln::model! {
    SequenceInput = Sequential([
        Input(shape = (10, 8)),
        Dense(16),
        RepeatVector(3),
    ]);
}
