fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (8, 8, 3)),
        DepthwiseConv2D(3, padding = "causal"),
    ]);
}
