fn main() {}

kiln::model! {
    Features = Sequential([
        Input(shape = (6,)),
        Dense(4),
        BatchNormalization(renorm = True),
    ]);
}
