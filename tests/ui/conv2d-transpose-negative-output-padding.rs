fn main() {}

kiln::model! {
    Up = Sequential([
        Input(shape = (4, 4, 3)),
        Conv2DTranspose(8, 3, strides = 2, output_padding = (1, -1)),
    ]);
}
