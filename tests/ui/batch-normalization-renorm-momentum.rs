fn main() {}

kiln::model! {
    Features = Sequential([
        Input(shape = (6,)),
        BatchNormalization(renorm_momentum = 0.9),
    ]);
}
