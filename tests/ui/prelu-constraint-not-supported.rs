fn main() {}

kiln::model! {
    Constrained = Sequential([
        Input(shape = (8,)),
        PReLU(alpha_constraint = NonNeg()),
    ]);
}
