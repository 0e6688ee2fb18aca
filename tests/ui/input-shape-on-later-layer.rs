fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(10, input_shape = (4,)),
        Dense(1, input_dim = 10),
    ]);
}
