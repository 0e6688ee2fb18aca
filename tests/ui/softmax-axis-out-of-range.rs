fn main() {}

kiln::model! {
    Attention = Sequential([
        Input(shape = (4, 5, 3)),
        Dense(6),
        Softmax(axis = 4),
    ]);
}
