fn main() {}

kiln::model! {
    Features = Sequential([
        Input(shape = (6,)),
        BatchNormalization(gamma_constraint = max_norm(2.0, axis = 1)),
    ]);
}
