fn main() {}

kiln::model! {
    ChannelsFirst = Sequential([
        Input(shape = (8, 8, 3)),
        Flatten(data_format = "channels_first"),
        Dense(10),
    ]);
}
