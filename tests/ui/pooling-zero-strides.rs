fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (10, 8)),
        AveragePooling1D(2, strides = 0),
    ]);
}
