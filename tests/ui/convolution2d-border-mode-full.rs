fn main() {}

kiln::model! {
    Full = Sequential([
        Convolution2D(8, 3, 3, border_mode = "full", input_shape = (3, 16, 16), dim_ordering = "th"),
    ]);
}
