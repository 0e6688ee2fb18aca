fn main() {}

kiln::model! {
    ZeroAndNegative = Sequential([
        Input(shape = (12,)),
        Reshape((0, -3, 4)),
    ]);
}
