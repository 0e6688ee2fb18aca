fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (8, 8, 2)),
        SeparableConv2D(4, 3, depth_multiplier = -2),
    ]);
}
