fn main() {}

kiln::model! {
    Net = Sequential([
        Dense(10, activation = "relu"),
        Dense(1),
    ]);
}
