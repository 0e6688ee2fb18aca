fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (5, 3)),
        Bidirectional(Dense(4)),
    ]);
}
