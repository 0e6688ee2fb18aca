fn main() {}

kiln::model! {
    Indivisible = Sequential([
        Input(shape = (3, 4)),
        Reshape((-1, 5)),
    ]);
}
