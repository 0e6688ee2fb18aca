fn main() {}

kiln::model! {
    Tokens = Sequential([
        Input(shape = (10, 16)),
        Dense(8),
        LayerNormalization(axis = [2, -1]),
    ]);
}
