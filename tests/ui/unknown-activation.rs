fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(10, activation = "rleu"),
        Activation("sigmod"),
        Dense(1, activation = leaky_relu(slope = 0.1)),
    ]);
}
