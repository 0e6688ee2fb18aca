fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(10, name = "hidden"),
        Dense(10, name = "hidden"),
        Dense(1),
        Dense(1, name = "dense"),
    ]);
}
