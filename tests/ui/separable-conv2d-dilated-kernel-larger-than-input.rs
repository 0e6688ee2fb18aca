fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (6, 9, 2)),
        SeparableConv2D(4, 3, dilation_rate = 3),
    ]);
}
