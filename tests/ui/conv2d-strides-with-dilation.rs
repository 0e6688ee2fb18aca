fn main() {}

kiln::model! {
    Both = Sequential([
        Input(shape = (16, 16, 3)),
        Conv2D(4, 3, strides = 2, dilation_rate = 2),
    ]);
}
