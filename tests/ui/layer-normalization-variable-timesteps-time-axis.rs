fn main() {}

kiln::model! {
    Normaliser = Sequential([
        Input(shape = (None, 3)),
        LayerNormalization(axis = [1, 2]),
    ]);
}
