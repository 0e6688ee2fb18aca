fn main() {}

// Unlike `MaxPooling2D`, Keras 3's `AveragePooling2D` has no default `pool_size`.
kiln::model! {
    Net = Sequential([
        Input(shape = (8, 8, 3)),
        AveragePooling2D(),
    ]);
}
