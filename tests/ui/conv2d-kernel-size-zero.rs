fn main() {}

kiln::model! {
    ZeroKernel = Sequential([
        Input(shape = (8, 8, 3)),
        Conv2D(4, (3, 0)),
    ]);
}
