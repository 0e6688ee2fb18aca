fn main() {}

kiln::model! {
    Mixed = Sequential([
        Convolution2D(64, (3, 3), 1, input_shape = (32, 32, 3)),
    ]);
}
