fn main() {}

kiln::model! {
    Leaky = Sequential([
        Input(shape = (8,)),
        LeakyReLU(negative_slope = 0.1, alpha = 0.2),
    ]);
}
