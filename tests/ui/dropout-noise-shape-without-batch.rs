fn main() {}

kiln::model! {
    Sequences = Sequential([
        Input(shape = (10, 8)),
        Dense(4),
        Dropout(0.5, noise_shape = (1, 4)),
    ]);
}
