fn main() {}

kiln::model! {
    TooFewDims = Sequential([
        Input(shape = (4, 5, 6)),
        Dense(8),
        Permute((2, 1)),
    ]);
}
