fn main() {}

kiln::model! {
    TwoUnknowns = Sequential([
        Input(shape = (12,)),
        Reshape((-1, 2, -1)),
    ]);
}
