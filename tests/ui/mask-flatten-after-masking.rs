fn main() {}

kiln::model! {
    Padded = Sequential([
        Input(shape = (10, 3)),
        Masking(),
        Dense(4),
        Flatten(),
        Dense(1),
    ]);
}
