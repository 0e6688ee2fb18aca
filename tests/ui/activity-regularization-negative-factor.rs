fn main() {}

kiln::model! {
    Sparse = Sequential([
        Input(shape = (8,)),
        Dense(4),
        ActivityRegularization(l1 = -0.01),
    ]);
}
