fn main() {}

kiln::model! {
    Shifted = Sequential([
        Input(shape = (8,)),
        ReLU(threshold = -0.5),
    ]);
}
