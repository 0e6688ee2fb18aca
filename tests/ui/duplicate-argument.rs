fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(10, units = 12),
        Dense(1, activation = "relu", activation = "tanh"),
    ]);
}
