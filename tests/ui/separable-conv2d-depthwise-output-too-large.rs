fn main() {}

kiln::model! {
    Wide = Sequential([
        Input(shape = (64, 64, 2)),
        SeparableConv2D(1, 1, depth_multiplier = 4096),
    ]);
}
