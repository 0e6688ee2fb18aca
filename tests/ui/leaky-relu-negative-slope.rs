fn main() {}

kiln::model! {
    Leaky = Sequential([
        Input(shape = (8,)),
        LeakyReLU(negative_slope = -0.3),
    ]);
}
