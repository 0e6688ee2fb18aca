fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense("ten"),
    ]);
    Other = Sequential([
        Input(shape = (4,)),
        Dense(10, use_bias = 3),
        Activation(activation = 2.5),
    ]);
}
