fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (10, 3)),
        Masking(),
        Dense(4),
        GlobalMaxPooling1D(),
    ]);
}
