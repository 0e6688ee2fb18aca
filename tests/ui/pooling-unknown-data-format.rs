fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (3, 8, 8)),
        MaxPooling2D(data_format = "channels_middle"),
    ]);
}
