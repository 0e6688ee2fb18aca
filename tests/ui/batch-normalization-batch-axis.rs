fn main() {}

kiln::model! {
    Features = Sequential([
        Input(shape = (6,)),
        BatchNormalization(axis = 0),
    ]);
}
