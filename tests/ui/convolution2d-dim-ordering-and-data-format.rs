fn main() {}

kiln::model! {
    Twice = Sequential([
        Convolution2D(8, 3, 3, input_shape = (3, 16, 16), dim_ordering = "th", data_format = "channels_first"),
    ]);
}
