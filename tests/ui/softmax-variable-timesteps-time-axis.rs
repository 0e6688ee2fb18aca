fn main() {}

kiln::model! {
    Attention = Sequential([
        Input(shape = (None, 3)),
        Softmax(axis = 1),
    ]);
}
