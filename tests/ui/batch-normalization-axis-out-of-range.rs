fn main() {}

kiln::model! {
    Images = Sequential([
        Input(shape = (8, 8, 3)),
        Dense(4),
        BatchNormalization(axis = 4),
    ]);
}
