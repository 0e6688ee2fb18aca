fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(units = 10, "relu"),
    ]);
}
