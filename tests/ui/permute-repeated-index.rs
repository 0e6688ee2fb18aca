fn main() {}

kiln::model! {
    Repeated = Sequential([
        Input(shape = (4, 5, 6)),
        Permute((1, 3, 3)),
    ]);
}
