fn main() {}

kiln::model! {
    Downsampler = Sequential([
        Input(shape = (None, 3)),
        Conv1D(4, 2, strides = 2, padding = "causal"),
    ]);
}
