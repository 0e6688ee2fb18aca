fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (10, 8)),
        MaxPooling1D(2, padding = "SAME"),
    ]);
}
