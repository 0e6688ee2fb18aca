fn main() {}

kiln::model! {
    Net = Sequential([
        Dense(10, input_dim = 4),
        Input(shape = (10,)),
        Dense(1),
    ]);
}
