fn main() {}

kiln::model! {
    Typo = Sequential([
        Input(shape = (3, 16, 16)),
        Conv2D(4, 3, data_format = "channel_first"),
    ]);
}
