fn main() {}

kiln::model! {
    Late = Sequential([
        Input(shape = (6,)),
        Dense(6),
        Embedding(100, 8),
    ]);
}
