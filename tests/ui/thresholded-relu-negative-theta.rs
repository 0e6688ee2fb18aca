fn main() {}

kiln::model! {
    Sparse = Sequential([
        Input(shape = (8,)),
        ThresholdedReLU(theta = -1.0),
    ]);
}
