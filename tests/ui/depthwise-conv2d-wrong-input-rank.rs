fn main() {}

kiln::model! {
    Flat = Sequential([
        Input(shape = (8, 8)),
        DepthwiseConv2D(3),
    ]);
}
