fn main() {}

kiln::model! {
    WrongCount = Sequential([
        Input(shape = (3, 2)),
        Dense(8),
        Dense(4),
        Reshape((6, 4)),
    ]);
}
