fn main() {}

// Keras 3's default `pool_size = 2` does not fit one step: the error points at the layer.
kiln::model! {
    Net = Sequential([
        Input(shape = (1, 8)),
        MaxPooling1D(),
    ]);
}
