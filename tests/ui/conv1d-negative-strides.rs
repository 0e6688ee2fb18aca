fn main() {}

kiln::model! {
    Backwards = Sequential([
        Input(shape = (16, 2)),
        Conv1D(4, 3, strides = -2),
    ]);
}
