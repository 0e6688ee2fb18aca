fn main() {}

kiln::model! {
    Mixer = Sequential([
        Input(shape = (None, 3)),
        Conv1D(4, 1, data_format = "channels_first"),
    ]);
}
