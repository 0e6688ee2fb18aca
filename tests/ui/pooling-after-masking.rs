fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (10, 3)),
        Masking(),
        MaxPooling1D(),
    ]);
}
