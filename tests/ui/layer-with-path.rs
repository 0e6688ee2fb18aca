fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        layers::Dense(1),
    ]);
}
