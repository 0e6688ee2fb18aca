fn main() {}

kiln::model! {
    Images = Sequential([
        Input(shape = (8, 8, 3)),
        BatchNormalization(axis = [1, 2]),
    ]);
}
