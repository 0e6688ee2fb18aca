fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (16,)),
        GlobalAveragePooling1D(),
    ]);
}
