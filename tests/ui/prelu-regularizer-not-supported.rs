fn main() {}

kiln::model! {
    Regularized = Sequential([
        Input(shape = (8,)),
        PReLU(alpha_regularizer = l2(0.01)),
    ]);
}
