fn main() {}

kiln::model! {
    Clipped = Sequential([
        Input(shape = (8,)),
        ReLU(max_value = -6),
    ]);
}
