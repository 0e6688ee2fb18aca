fn main() {}

kiln::model! {
    Tagger = Sequential([
        Input(shape = (None, 3)),
        GRU(4, return_sequences = True),
        PReLU(),
    ]);
}
