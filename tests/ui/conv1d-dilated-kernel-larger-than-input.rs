fn main() {}

kiln::model! {
    Dilated = Sequential([
        Input(shape = (7, 2)),
        Conv1D(4, 3, dilation_rate = 4),
    ]);
}
