fn main() {}

kiln::model! {
    Leaky = Sequential([
        Input(shape = (8,)),
        ReLU(negative_slope = -0.1),
    ]);
}
