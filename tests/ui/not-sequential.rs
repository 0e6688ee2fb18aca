fn main() {}

kiln::model! {
    Net = Functional([
        Input(shape = (4,)),
        Dense(1),
    ]);
}
