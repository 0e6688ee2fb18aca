fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4, 4)),
        Flatten,
        Dense(1),
    ]);
}
