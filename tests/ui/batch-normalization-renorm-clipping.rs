fn main() {}

kiln::model! {
    Features = Sequential([
        Input(shape = (6,)),
        BatchNormalization(renorm_clipping = [3.0, 0.3, 5.0]),
    ]);
}
