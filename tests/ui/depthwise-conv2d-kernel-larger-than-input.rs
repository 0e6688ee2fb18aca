fn main() {}

kiln::model! {
    Small = Sequential([
        Input(shape = (4, 6, 3)),
        DepthwiseConv2D((3, 7)),
    ]);
}
