fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (10, 8)),
        Dense(16),
        MaxPooling2D(),
    ]);
}
