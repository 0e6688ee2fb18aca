fn main() {}

kiln::model! {
    Attention = Sequential([
        Input(shape = (10, 6)),
        Softmax(axis = 0),
    ]);
}
