fn main() {}

kiln::model! {
    ZeroBased = Sequential([
        Input(shape = (10, 64)),
        Permute((1, 0)),
    ]);
}
