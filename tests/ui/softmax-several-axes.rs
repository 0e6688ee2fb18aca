fn main() {}

kiln::model! {
    Attention = Sequential([
        Input(shape = (4, 5, 3)),
        Softmax(axis = (1, 2)),
    ]);
}
