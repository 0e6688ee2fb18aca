fn main() {}

kiln::model! {
    Up = Sequential([
        Input(shape = (1, 4, 3)),
        Conv2DTranspose(8, 2, strides = (1, 2), padding = "same", output_padding = 0),
    ]);
}
