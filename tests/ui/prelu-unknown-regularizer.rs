fn main() {}

kiln::model! {
    Regularized = Sequential([
        Input(shape = (4, 8)),
        PReLU(alpha_regularizer = l3(0.01), shared_axes = [1]),
    ]);
}
