fn main() {}

kiln::model! {
    Constrained = Sequential([
        Input(shape = (8,)),
        PReLU(alpha_constraint = max_norm(2.0, axis = 1)),
    ]);
}
