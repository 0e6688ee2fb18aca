fn main() {}

kiln::model! {
    // Keras's batch size (32) cannot be fixed, and 4 does not broadcast to 8 features.
    Sequences = Sequential([
        Input(shape = (10, 8)),
        Dropout(0.5, noise_shape = (32, 1, 4)),
    ]);
}
